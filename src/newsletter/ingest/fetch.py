"""Fetch an article or feed over http(s) with httpx.

One GET with a timeout, redirects followed, and a User-Agent that names us. Every
way it can fail (no such host, refused, timed out, not 2xx, too big) becomes a
``SourceError``: "cannot fetch URL: reason (check the address or your connection)".

In: a URL and a timeout in seconds. Out: ``Fetched`` (final URL, content type,
declared charset, body bytes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from newsletter import __version__
from newsletter.errors import SourceError

log = logging.getLogger(__name__)

USER_AGENT = f"newsletter/{__version__} (article fetcher; +https://pypi.org/project/newsletter/)"
ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,text/markdown;q=0.9,text/plain;q=0.8,*/*;q=0.5"
)
MAX_BYTES = 10 * 1024 * 1024
_HINT = "check the address or your connection"


@dataclass(frozen=True)
class Fetched:
    """A fetched response: where we ended up, what it says it is, and the body."""

    url: str
    content_type: str
    charset: str
    body: bytes


def fetch(url: str, *, timeout: float) -> Fetched:
    """GET ``url`` (see module docstring); a ``SourceError`` for anything but a 2xx body."""
    try:
        with (
            httpx.Client(
                timeout=timeout,
                follow_redirects=True,
                headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
            ) as client,
            client.stream("GET", url) as response,
        ):
            if not response.is_success:
                raise _cannot(url, f"HTTP {response.status_code} {response.reason_phrase}".strip())
            body = _read_capped(response, url)
            log.debug("fetched %s (%d bytes, %s)", response.url, len(body), response.headers)
            return Fetched(
                url=str(response.url),
                content_type=response.headers.get("content-type", ""),
                charset=response.charset_encoding or "",
                body=body,
            )
    except httpx.TimeoutException:
        raise _cannot(url, f"no answer within {timeout:g} s") from None
    except httpx.ConnectError as exc:
        raise _cannot(url, _connect_reason(exc)) from None
    except httpx.TooManyRedirects:
        raise _cannot(url, "too many redirects") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise _cannot(url, "not a valid http(s) address") from None
    except httpx.HTTPError as exc:
        raise _cannot(url, str(exc) or type(exc).__name__) from None


def _read_capped(response: httpx.Response, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_BYTES:
            raise _cannot(url, f"the response is larger than {MAX_BYTES // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _connect_reason(exc: httpx.ConnectError) -> str:
    message = str(exc)
    lowered = message.lower()
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "host not found"
    if "temporary failure in name resolution" in lowered or "getaddrinfo" in lowered:
        return "host not found"
    if "refused" in lowered:
        return "connection refused"
    return message or "connection failed"


def _cannot(url: str, reason: str) -> SourceError:
    return SourceError(f"cannot fetch {url}: {reason}", hint=_HINT)
