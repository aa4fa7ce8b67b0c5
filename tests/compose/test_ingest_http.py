"""Reading http(s) sources against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from http_servers import serving
from newsletter.compose.ingest import read_source
from newsletter.errors import SourceError

ARTICLES = Path(__file__).resolve().parents[1] / "fixtures" / "articles"

LEGACY_PAGE = (
    "<html><head><title>Grüße aus Köln</title></head><body><article><h1>Grüße aus Köln</h1>"
    "<p>Die Kölner Straßenbahn fährt ab Montag wieder nach Fahrplan, teilten die "
    "Verkehrsbetriebe am Freitag mit. Die Reparatur der Oberleitung hatte länger gedauert "
    "als erwartet, hieß es aus der Leitstelle.</p></article></body></html>"
).encode("cp1252")

RELATIVE_IMAGE_PAGE = b"""<!doctype html><html><head><meta charset="utf-8">
<meta property="og:image" content="pictures/lock.jpg">
<title>Canal lock reopens after repairs - Midland Waterways News</title></head>
<body><article><h1>Canal lock reopens after repairs</h1>
<p>The lock at Hatton Bridge reopened to boats on Friday after three months of repairs to its
gates, the waterways trust said, ending a detour of almost forty kilometres for boaters.</p>
<p>Engineers replaced both timber gates and rebuilt a section of the chamber wall.</p>
</article></body></html>"""


@dataclass
class Site:
    """The test server: its base URL and the User-Agent headers it saw."""

    base: str
    user_agents: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _routes() -> dict[str, tuple[int, dict[str, str], bytes]]:
    def fixture(name: str) -> bytes:
        return (ARTICLES / name).read_bytes()

    html = "text/html; charset=utf-8"
    return {
        "/news/harbour": (200, {"Content-Type": html}, fixture("page_full.html")),
        "/science/feed": (200, {"Content-Type": "application/rss+xml"}, fixture("feed_rss.xml")),
        "/farming.xml": (200, {"Content-Type": "text/xml"}, fixture("feed_atom.atom")),
        "/markets.txt": (
            200,
            {"Content-Type": "text/plain; charset=utf-8"},
            fixture("scrape_markets.txt"),
        ),
        "/pass.md": (200, {"Content-Type": "text/markdown"}, fixture("article_front_matter.md")),
        "/legacy": (200, {"Content-Type": "text/html; charset=windows-1252"}, LEGACY_PAGE),
        "/canal/lock": (200, {"Content-Type": html}, RELATIVE_IMAGE_PAGE),
        "/old-address": (301, {"Location": "/canal/lock"}, b""),
        "/login": (200, {"Content-Type": html}, fixture("page_no_article.html")),
        "/report.pdf": (200, {"Content-Type": "application/pdf"}, b"%PDF-1.7\n\x00\x01binary"),
        "/empty": (200, {"Content-Type": html}, b""),
        "/broken": (500, {"Content-Type": "text/plain"}, b"oops"),
    }


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    routes = _routes()
    state = Site(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.user_agents.append(self.headers.get("User-Agent", ""))
            if self.path == "/slow":
                # Answer only when the test module is done: the client must time out first.
                state.release.wait(timeout=30)
                return
            status, headers, body = routes.get(self.path, (404, {}, b"not here"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as state.base:
        yield state
        state.release.set()


def fetch_error(url: str, *, timeout: float = 5.0) -> str:
    with pytest.raises(SourceError) as caught:
        read_source(url, timeout=timeout)
    message = str(caught.value)
    assert url in message
    assert "\n" not in message
    return message


def test_article_page(site: Site) -> None:
    [article] = read_source(f"{site.base}/news/harbour")
    assert article.title == "Harbour strike ends after nine days as dockers accept pay deal"
    assert article.url == "https://www.coastcourier.example.com/news/2026/11/harbour-strike-ends"
    assert article.source == f"{site.base}/news/harbour"
    assert article.text.startswith("Dock workers at the port of Eastwick")
    assert "newsletter/" in site.user_agents[-1]


def test_rss_feed_by_content_type(site: Site) -> None:
    articles = read_source(f"{site.base}/science/feed")
    assert [a.title for a in articles] == [
        "Glacier survey finds faster melt on northern flank",
        "Amateur astronomers catalogue 300 variable stars",
        "Seed bank adds 1,200 Arctic plant samples",
    ]


def test_atom_feed_served_as_text_xml(site: Site) -> None:
    dairy, hedgerows = read_source(f"{site.base}/farming.xml")
    # Relative links resolve against where the feed was fetched from (RFC 4287 / xml:base).
    assert dairy.url == f"{site.base}/2026/11/dairy-plant"
    assert hedgerows.title == "Hedgerow grants reopen"


def test_plain_text_and_markdown_over_http(site: Site) -> None:
    [story] = read_source(f"{site.base}/markets.txt")
    assert story.title == "Brightwave Inc. shares jump after U.S. regulator clears battery plant"
    assert story.url == f"{site.base}/markets.txt"
    [rail] = read_source(f"{site.base}/pass.md")
    assert rail.url == "https://transit.example.org/news/regional-pass"  # front matter wins
    assert rail.summary.startswith("From January one monthly pass")


def test_declared_charset_is_honoured(site: Site) -> None:
    [article] = read_source(f"{site.base}/legacy")
    assert article.title == "Grüße aus Köln"
    assert "Straßenbahn fährt" in article.text


def test_redirect_is_followed_and_relative_image_resolved(site: Site) -> None:
    [article] = read_source(f"{site.base}/old-address")
    assert article.title == "Canal lock reopens after repairs"
    assert article.url == f"{site.base}/canal/lock"
    assert article.image == f"{site.base}/canal/pictures/lock.jpg"
    assert article.image_alt == "Canal lock reopens after repairs"


def test_http_error_status(site: Site) -> None:
    url = f"{site.base}/no/such/story"
    assert fetch_error(url) == (
        f"cannot fetch {url}: HTTP 404 Not Found (check the address or your connection)"
    )
    assert "HTTP 500" in fetch_error(f"{site.base}/broken")


def test_timeout(site: Site) -> None:
    url = f"{site.base}/slow"
    assert fetch_error(url, timeout=0.2) == (
        f"cannot fetch {url}: no complete answer within 0.2 s"
        " (check the address or your connection)"
    )


def test_unreachable_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    url = f"http://127.0.0.1:{port}/news"
    assert fetch_error(url) == (
        f"cannot fetch {url}: connection refused (check the address or your connection)"
    )


def test_unknown_host() -> None:
    url = "http://no-such-host.invalid/news"
    assert fetch_error(url).startswith(f"cannot fetch {url}: ")


def test_page_without_article_over_http(site: Site) -> None:
    url = f"{site.base}/login"
    assert fetch_error(url).startswith(f"no article text found in {url}")


def test_binary_content_type_is_refused(site: Site) -> None:
    url = f"{site.base}/report.pdf"
    assert "is not an article page or feed (it is application/pdf)" in fetch_error(url)


def test_empty_body(site: Site) -> None:
    url = f"{site.base}/empty"
    assert fetch_error(url).startswith(f"{url} is empty")
