"""The bounds of fetching a URL source: deadline, redirects into the local network, size.

Real HTTP servers on 127.0.0.1: an asyncio one that drips its body on a schedule, and a
threading one for redirects and a compressed bomb.
"""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from http_servers import serving
from newsletter.compose.ingest.fetch import MAX_BYTES, fetch
from newsletter.compose.ingest.hosts import address_is_public, host_is_public
from newsletter.errors import SourceError

PAGE = b"<html><body><article><p>" + b"A short page about the harbour. " * 20 + b"</p></article>"


def _bomb(megabytes: int) -> bytes:
    """``megabytes`` MB of zeros, gzipped (about a thousandth of that on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    return b"".join(packer.compress(zeros) for _ in range(megabytes)) + packer.flush()


class DripServer:
    """Answers every request with headers at once, then one body byte per ``interval``."""

    def __init__(self, length: int, interval: float) -> None:
        self.length, self.interval = length, interval
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
            + f"Content-Length: {self.length}\r\n\r\n".encode()
        )
        try:
            for _ in range(self.length):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(self.interval)
        except ConnectionError:
            pass
        writer.close()

    def __enter__(self) -> DripServer:
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def test_a_dripping_server_is_cut_off_at_the_deadline() -> None:
    # 40 bytes a quarter second apart: each read is quick, the whole answer takes 10 s
    with DripServer(length=40, interval=0.25) as server:
        url = f"http://127.0.0.1:{server.port}/slowly"
        started = time.monotonic()
        with pytest.raises(SourceError) as caught:
            fetch(url, timeout=1.0)
        elapsed = time.monotonic() - started
    assert str(caught.value) == (
        f"cannot fetch {url}: no complete answer within 1 s (check the address or your connection)"
    )
    assert elapsed < 3.0


Routes = dict[str, Callable[[BaseHTTPRequestHandler], None]]


@pytest.fixture
def site() -> Iterator[tuple[str, Routes, list[str]]]:
    """(base URL, routes to fill in, paths requested) of a threading HTTP server."""
    routes: Routes = {}
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            routes.get(self.path, lambda h: h.send_error(404))(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, routes, seen


def _answer(status: int, body: bytes = b"", **headers: str) -> Callable[..., None]:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return handle


def test_a_public_page_may_not_redirect_into_the_local_network(
    site: tuple[str, Routes, list[str]],
) -> None:
    base, routes, seen = site
    port = base.rsplit(":", 1)[1]
    routes["/story"] = _answer(302, Location=f"http://localhost:{port}/admin")
    routes["/admin"] = _answer(200, PAGE, Content_Type="text/html")

    # the test server stands in for a public site; "localhost" is judged as it really is
    def pretend_public(host: str) -> bool:
        return host == "127.0.0.1" or host_is_public(host)

    with pytest.raises(SourceError) as caught:
        fetch(f"{base}/story", timeout=5, is_public=pretend_public)
    assert str(caught.value).startswith(
        f"cannot fetch {base}/story: it redirects to http://localhost:{port}/admin, "
        "a local network address"
    )
    assert seen == ["/story"]


def test_a_local_address_given_by_the_user_may_redirect_locally(
    site: tuple[str, Routes, list[str]],
) -> None:
    base, routes, _ = site
    port = base.rsplit(":", 1)[1]
    routes["/story"] = _answer(302, Location=f"http://localhost:{port}/page")
    routes["/page"] = _answer(200, PAGE, Content_Type="text/html")
    fetched = fetch(f"{base}/story", timeout=5)
    assert fetched.url == f"http://localhost:{port}/page"
    assert fetched.body == PAGE


def test_a_gzip_bomb_stops_at_the_limit_without_expanding_in_memory(
    site: tuple[str, Routes, list[str]],
) -> None:
    base, routes, _ = site
    bomb = _bomb(50)
    routes["/bomb"] = _answer(200, bomb, Content_Type="text/html", Content_Encoding="gzip")
    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as caught:
            fetch(f"{base}/bomb", timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "the response is larger than 10 MB" in str(caught.value)
    assert peak < MAX_BYTES + 4 * 1024 * 1024


def test_gzip_and_deflate_bodies_are_decoded(site: tuple[str, Routes, list[str]]) -> None:
    base, routes, _ = site
    gzipped = zlib.compress(PAGE, wbits=16 + zlib.MAX_WBITS)
    raw_deflate = zlib.compress(PAGE, wbits=-zlib.MAX_WBITS)
    routes["/gz"] = _answer(200, gzipped * 2, Content_Type="text/html", Content_Encoding="gzip")
    routes["/zl"] = _answer(200, zlib.compress(PAGE), Content_Encoding="deflate")
    routes["/raw"] = _answer(200, raw_deflate, Content_Encoding="deflate")
    assert fetch(f"{base}/gz", timeout=5).body == PAGE * 2  # two gzip members
    assert fetch(f"{base}/zl", timeout=5).body == PAGE
    assert fetch(f"{base}/raw", timeout=5).body == PAGE
    with pytest.raises(SourceError, match="larger than 1 KB"):
        fetch(f"{base}/gz", timeout=5, max_bytes=1024)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("[::1]", False),
        ("not an address", False),
    ],
)
def test_address_is_public(address: str, public: bool) -> None:
    assert address_is_public(address) is public


def test_host_is_public_resolves_names() -> None:
    table = {
        "news.example": ["93.184.216.34"],
        "sneaky.example": ["93.184.216.34", "::ffff:192.168.0.10"],
        "metadata.example": ["169.254.169.254"],
    }

    def resolve(host: str) -> list[str]:
        return table.get(host, [])

    assert host_is_public("news.example", resolve=resolve)
    assert not host_is_public("sneaky.example", resolve=resolve)
    assert not host_is_public("metadata.example.", resolve=resolve)
    assert not host_is_public("localhost")
    assert not host_is_public("[::1]", resolve=resolve)
    assert host_is_public("unresolvable.example", resolve=resolve)
