"""The figures a sender wants before sending, measured on the rendered HTML.

``measure_html(html, warn_kb=...)`` -> ``HtmlFigures``: size against Gmail's clipping
limit, every image (and which lack alt text), every link. ``check_links(urls)`` asks each
http(s) link for its status with short timeouts; offline, every link comes back unreachable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

import httpx

log = logging.getLogger(__name__)

# Gmail cuts the HTML part beyond about 102 KB and hides the rest behind "View entire
# message": the footer with the unsubscribe link and postal address is what gets lost.
GMAIL_CLIP_BYTES = 102 * 1024

LINK_TIMEOUT_SECONDS = 4.0
LINK_CONCURRENCY = 8


@dataclass(frozen=True)
class ImageRef:
    """One <img>: its ``src`` and its ``alt`` (None when the attribute is missing)."""

    src: str
    alt: str | None

    @property
    def lacks_alt(self) -> bool:
        """True when a reader without images (or a screen reader) gets nothing."""
        return self.alt is None or not self.alt.strip()


@dataclass(frozen=True)
class LinkRef:
    """One <a href>: the target and the text a reader sees (or an image's alt)."""

    url: str
    text: str

    @property
    def checkable(self) -> bool:
        """True for http(s) links, the only ones a HEAD request can check."""
        return self.url.startswith(("http://", "https://"))


@dataclass(frozen=True)
class HtmlFigures:
    """Size, images and links of one rendered HTML part."""

    size_bytes: int
    warn_bytes: int
    images: tuple[ImageRef, ...]
    links: tuple[LinkRef, ...]
    clip_bytes: int = GMAIL_CLIP_BYTES

    @property
    def size_status(self) -> str:
        """ "ok", "warn" (at or above the configured warning size) or "clipped" (Gmail clips)."""
        if self.size_bytes >= self.clip_bytes:
            return "clipped"
        if self.size_bytes >= self.warn_bytes:
            return "warn"
        return "ok"

    @property
    def images_without_alt(self) -> tuple[ImageRef, ...]:
        """The images whose alt text is missing or blank."""
        return tuple(image for image in self.images if image.lacks_alt)


class _Collector(HTMLParser):
    """Collects <img> and <a> elements; link text includes the alt of images inside."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[ImageRef] = []
        self.links: list[LinkRef] = []
        self._open_link: str | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            image = ImageRef(src=values.get("src") or "", alt=values.get("alt"))
            self.images.append(image)
            if self._open_link is not None and image.alt:
                self._link_text.append(image.alt)
        elif tag == "a" and values.get("href"):
            self._close_link()
            self._open_link = (values["href"] or "").strip()
            self._link_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close_link()

    def handle_data(self, data: str) -> None:
        if self._open_link is not None:
            self._link_text.append(data)

    def close(self) -> None:
        super().close()
        self._close_link()

    def _close_link(self) -> None:
        if self._open_link is not None:
            text = " ".join(" ".join(self._link_text).split())
            self.links.append(LinkRef(url=self._open_link, text=text))
        self._open_link = None
        self._link_text = []


def measure_html(html: str, *, warn_kb: int) -> HtmlFigures:
    """Measure ``html`` (the HTML part as a recipient gets it) -> HtmlFigures.

    ``warn_kb`` is the configured warning size (compose.max_html_kb); sizes are
    UTF-8 bytes, as they go over the wire before transfer encoding.
    """
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return HtmlFigures(
        size_bytes=len(html.encode("utf-8")),
        warn_bytes=warn_kb * 1024,
        images=tuple(collector.images),
        links=tuple(collector.links),
    )


@dataclass(frozen=True)
class LinkStatus:
    """The outcome of checking one link: ``ok`` when it answered below 400."""

    url: str
    ok: bool
    status: int | None
    detail: str


async def _check_one(client: httpx.AsyncClient, url: str, gate: asyncio.Semaphore) -> LinkStatus:
    async with gate:
        try:
            response = await client.head(url)
            if response.status_code in (405, 501):
                # some servers refuse HEAD: a streamed GET reads only the status line
                async with client.stream("GET", url) as streamed:
                    response = streamed
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
            log.debug("link %s unreachable: %s", url, exc)
            return LinkStatus(url=url, ok=False, status=None, detail=f"unreachable ({reason})")
    status = response.status_code
    return LinkStatus(url=url, ok=status < 400, status=status, detail=f"HTTP {status}")


async def check_links(
    urls: Sequence[str],
    *,
    timeout: float = LINK_TIMEOUT_SECONDS,
    concurrency: int = LINK_CONCURRENCY,
) -> list[LinkStatus]:
    """HEAD each distinct http(s) URL in ``urls`` -> one LinkStatus per URL, in order.

    Redirects are followed; a server that refuses HEAD gets a GET whose body is not
    read. Unreachable hosts (and everything when offline) come back ``ok=False``
    within ``timeout`` seconds; nothing here raises for a bad link.
    """
    unique = list(dict.fromkeys(url for url in urls if url.startswith(("http://", "https://"))))
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        headers={"User-Agent": "newsletter-preview link check"},
    ) as client:
        return list(await asyncio.gather(*(_check_one(client, url, gate) for url in unique)))
