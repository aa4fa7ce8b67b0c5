"""Fetch an article or feed over http(s) with httpx, within fixed bounds.

One GET with redirects followed and a User-Agent that names us, bounded three ways:

- one deadline (``timeout`` seconds) for the whole fetch: resolving, connecting, every
  redirect and every read, so a server that drips a byte at a time cannot hold it longer;
- the body is decoded here (gzip, deflate) and counted after decoding, so a small
  compressed body never expands past ``max_bytes`` in memory;
- when the address given is public, a redirect to a loopback, private, link-local,
  multicast or reserved address (or a name that resolves to one) is refused. An address
  the user gives that is itself local (a test server, an intranet page) is fetched as asked.

Every way it can fail becomes a ``SourceError``: "cannot fetch URL: reason (what to do)".

In: a URL, the deadline in seconds, optionally the size limit and the public-host test.
Out: ``Fetched`` (final URL, content type, declared charset, decoded body bytes).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from newsletter import __version__
from newsletter.aio import run_async
from newsletter.compose.ingest.hosts import host_is_public
from newsletter.errors import SourceError

log = logging.getLogger(__name__)

USER_AGENT = f"newsletter/{__version__} (article fetcher; +https://pypi.org/project/newsletter/)"
ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,text/markdown;q=0.9,text/plain;q=0.8,*/*;q=0.5"
)
# only what _Body decodes with a bound; httpx would also offer br/zstd when installed
ACCEPT_ENCODING = "gzip, deflate"
MAX_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 10
_INFLATE_STEP = 64 * 1024
_HINT = "check the address or your connection"


@dataclass(frozen=True)
class Fetched:
    """A fetched response: where we ended up, what it says it is, and the body."""

    url: str
    content_type: str
    charset: str
    body: bytes


# Not a NewsletterError: caught in this module, which raises the SourceError it describes.
class _Stop(Exception):
    """Ends a fetch early with the reason and hint for its SourceError."""

    def __init__(self, reason: str, hint: str = _HINT) -> None:
        super().__init__(reason)
        self.reason, self.hint = reason, hint


def fetch(
    url: str,
    *,
    timeout: float,
    max_bytes: int = MAX_BYTES,
    is_public: Callable[[str], bool] = host_is_public,
) -> Fetched:
    """GET ``url`` (see module docstring); a ``SourceError`` for anything but a 2xx body.

    ``is_public(host)`` decides which hosts count as public internet hosts.
    """
    try:
        return run_async(_fetch_within(url, timeout, max_bytes, is_public))
    except TimeoutError:
        raise _cannot(url, f"no complete answer within {timeout:g} s") from None
    except _Stop as stop:
        raise SourceError(f"cannot fetch {url}: {stop.reason}", hint=stop.hint) from None
    except httpx.ConnectError as exc:
        raise _cannot(url, _connect_reason(exc)) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise _cannot(url, "not a valid http(s) address") from None
    except httpx.HTTPError as exc:
        raise _cannot(url, str(exc) or type(exc).__name__) from None


async def _fetch_within(
    url: str, timeout: float, max_bytes: int, is_public: Callable[[str], bool]
) -> Fetched:
    async with asyncio.timeout(timeout):
        origin_public = await asyncio.to_thread(is_public, httpx.URL(url).host)
        async with httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
            },
        ) as client:
            request = client.build_request("GET", url)
            for _ in range(MAX_REDIRECTS + 1):
                response = await client.send(request, stream=True)
                try:
                    if response.next_request is None:
                        return await _finish(response, max_bytes)
                    request = response.next_request
                finally:
                    await response.aclose()
                if origin_public and not await asyncio.to_thread(is_public, request.url.host):
                    raise _Stop(
                        f"it redirects to {request.url}, a local network address",
                        hint="a public page may not lead into the local network; "
                        "give that address itself if you trust it",
                    )
            raise _Stop("too many redirects")


async def _finish(response: httpx.Response, max_bytes: int) -> Fetched:
    """The final response's decoded body, or ``_Stop`` for a status other than 2xx."""
    if not response.is_success:
        raise _Stop(f"HTTP {response.status_code} {response.reason_phrase}".strip())
    body = _Body(response.headers.get("content-encoding", ""), max_bytes)
    async for chunk in response.aiter_raw():
        body.feed(chunk)
    data = body.finish()
    log.debug("fetched %s (%d bytes, %s)", response.url, len(data), response.headers)
    return Fetched(
        url=str(response.url),
        content_type=response.headers.get("content-type", ""),
        charset=response.charset_encoding or "",
        body=data,
    )


class _Body:
    """A response body decoded as it arrives, refused once it passes ``limit`` bytes.

    zlib is asked for small steps, never more than the bytes still allowed (plus one,
    to notice the excess), so memory stays near ``limit`` whatever the compression ratio.
    """

    def __init__(self, content_encoding: str, limit: int) -> None:
        self.encoding = content_encoding.strip().lower() or "identity"
        if self.encoding not in {"identity", "gzip", "x-gzip", "deflate"}:
            raise _Stop(f"the server sent an unsupported encoding ({self.encoding})")
        self.limit = limit
        self.size = 0
        self.chunks: list[bytes] = []
        self._zlib = self._decompressor()
        self._started = False

    def _decompressor(self, raw_deflate: bool = False) -> zlib._Decompress | None:
        if self.encoding == "identity":
            return None
        if self.encoding in {"gzip", "x-gzip"}:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        """Decode and keep one chunk of the body as it came over the wire."""
        first, self._started = not self._started, True
        if self._zlib is None:
            self._keep(data)
            return
        try:
            self._inflate(data)
        except zlib.error:
            # "deflate" is zlib-wrapped by the standard, raw in some servers' practice
            if not (first and self.encoding == "deflate" and self.size == 0):
                raise _Stop("the server sent a body that does not decompress") from None
            self._zlib = self._decompressor(raw_deflate=True)
            self.feed(data)

    def _inflate(self, data: bytes) -> None:
        inflater = self._zlib
        assert inflater is not None
        while data:
            allowed = min(self.limit - self.size + 1, _INFLATE_STEP)
            self._keep(inflater.decompress(data, allowed))
            data = inflater.unconsumed_tail
            if inflater.eof:
                data = inflater.unused_data if self.encoding != "deflate" else b""
                if data:  # a gzip body may be several members one after another
                    inflater = self._zlib = self._decompressor()
                    assert inflater is not None

    def _keep(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _Stop(
                f"the response is larger than {_size(self.limit)}",
                hint="that is no article; check the address",
            )
        self.chunks.append(chunk)

    def finish(self) -> bytes:
        """The whole decoded body."""
        if self._zlib is not None:
            self._keep(self._zlib.flush())
        return b"".join(self.chunks)


def _size(limit: int) -> str:
    """``limit`` bytes as "10 MB" or "512 KB"."""
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MB"
    return f"{limit / 1024:g} KB"


def _connect_reason(exc: httpx.ConnectError) -> str:
    """A short reason from the errors behind a failed connect (anyio wraps the real one)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "host not found"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(exc) or "connection failed"


def _cannot(url: str, reason: str) -> SourceError:
    return SourceError(f"cannot fetch {url}: {reason}", hint=_HINT)
