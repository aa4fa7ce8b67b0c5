"""Read an RSS or Atom feed with feedparser: one Article per entry.

Each entry gives title, link, text (its full content if the feed carries it, else its
summary; HTML cleaned to paragraphs), image (media:content, media:thumbnail, an image
enclosure, or the first picture in the content), author and date.

An entry's own summary counts as a *given* teaser only when it is real prose written
as one: the entry also carries separate full content (so the summary is not just the
text), and the summary reads as finished sentences - 12 to 120 words, ending with
sentence punctuation, with no "[…]", "Read more" or "appeared first on" tail. Many
feeds fill <description> with the first N characters of the post; those make worse
teasers than the lead sentences we pick ourselves, so they only serve as text.

In: the feed's bytes, its source name, and for fetched feeds the URL and content type.
Out: a list of ``Article``; ``SourceError`` for a feed that is unreadable or has no entries.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import feedparser

from newsletter.compose.ingest.boilerplate import (
    clean_paragraphs,
    ends_like_sentence,
    is_furniture,
    normalise_space,
    same_text,
    word_count,
)
from newsletter.compose.ingest.fields import (
    absolute_url,
    is_local_reference,
    iso_date,
    join_names,
    web_url,
)
from newsletter.compose.ingest.htmltext import html_to_paragraphs, html_to_text, parse_fragment
from newsletter.compose.ingest.titles import title_from_text
from newsletter.errors import SourceError
from newsletter.models import Article

log = logging.getLogger(__name__)

_TRUNCATED = re.compile(
    r"(?:\[\s*(?:…|\.\.\.|&hellip;)\s*\]|…|\.\.\.|\b(?:read\s+more|continue\s+reading|keep\s+reading"
    r"|full\s+(?:story|article))\b[^.!?]{0,30})\W*$",
    re.IGNORECASE,
)
_GIVEN_SUMMARY_WORDS = (12, 120)


def read_feed(data: bytes, source: str, *, url: str = "", content_type: str = "") -> list[Article]:
    """One Article per entry of the RSS/Atom feed in ``data`` (see module docstring)."""
    headers = {"content-location": url} if url else {}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(data, response_headers=headers)
    if not parsed.get("version") and not parsed.entries:
        problem = getattr(parsed.get("bozo_exception"), "getMessage", lambda: "")() or "no feed"
        raise SourceError(
            f"{source} is not a readable RSS or Atom feed ({problem})",
            hint="check that the file or address is the feed itself",
        )
    if not parsed.entries:
        raise SourceError(
            f"feed {source} has no entries",
            hint="check the feed address, or compose once it has published something",
        )
    base = url or str(parsed.feed.get("link", ""))
    articles = []
    for number, entry in enumerate(parsed.entries, start=1):
        article = entry_article(entry, source=source, base=base, local=not url)
        if article is None:
            log.warning("%s: entry %d has no text; left out", source, number)
            continue
        articles.append(article)
    if not articles:
        raise SourceError(
            f"no entry of feed {source} has any text",
            hint="the feed gives titles only; use the article pages instead",
        )
    return articles


def entry_article(entry: Any, *, source: str, base: str, local: bool = False) -> Article | None:
    """The Article for one feedparser entry, or None when it has no text at all; with
    ``local`` (a feed file on disk) its image may be a file path, kept as written."""
    title = html_to_text(str(entry.get("title", "")))
    link = web_url(str(entry.get("link", "")), base, where=f"{source}: link of {title!r}")
    content_html = _content_html(entry)
    summary_html = str(entry.get("summary", ""))
    body_html = content_html or summary_html
    cleaned = clean_paragraphs(html_to_paragraphs(body_html), title=title)
    if not cleaned.paragraphs:
        return None
    text = "\n\n".join(cleaned.paragraphs)
    image, image_alt = _entry_image(entry, body_html, link or base, local=local)
    title = title or title_from_text(text)
    return Article(
        title=title,
        text=text,
        source=source,
        url=link,
        image=image,
        image_alt=(image_alt or title) if image else "",
        byline=join_names(entry.get("authors") or entry.get("author", "")),
        published=iso_date(entry.get("published_parsed") or entry.get("updated_parsed")),
        summary=given_summary(summary_html, text) if content_html else "",
        guid=normalise_space(str(entry.get("id", "")))[:500],
    )


def given_summary(summary_html: str, text: str) -> str:
    """The entry summary as a given teaser when it is finished prose, else ""."""
    summary = html_to_text(summary_html)
    low, high = _GIVEN_SUMMARY_WORDS
    if not low <= word_count(summary) <= high:
        return ""
    if _TRUNCATED.search(summary) or not ends_like_sentence(summary) or is_furniture(summary):
        return ""
    if "appeared first on" in summary.lower() or same_text(summary, text):
        return ""
    return summary


def _content_html(entry: Any) -> str:
    """The longest full-content body of an entry (content:encoded, atom:content), or ""."""
    bodies = [
        str(item.get("value", ""))
        for item in entry.get("content", [])
        if "html" in str(item.get("type", "text/html")) or "text" in str(item.get("type", ""))
    ]
    return max(bodies, key=len, default="")


def _entry_image(entry: Any, body_html: str, base: str, *, local: bool) -> tuple[str, str]:
    """(image URL or, with ``local``, file path; alt text) of an entry: media:content,
    thumbnail, enclosure, then <img>."""

    def source_of(value: object) -> str:
        text = str(value or "")
        # a file beside a feed on disk: see disk_images
        return text.strip() if local and is_local_reference(text) else absolute_url(text, base)

    for media in entry.get("media_content", []):
        medium = str(media.get("medium", "")) or str(media.get("type", ""))
        src = source_of(media.get("url", ""))
        if src and (not medium or "image" in medium):
            return src, ""
    for thumbnail in entry.get("media_thumbnail", []):
        if src := source_of(thumbnail.get("url", "")):
            return src, ""
    for link in entry.get("enclosures", []) + entry.get("links", []):
        is_image = str(link.get("type", "")).startswith("image/")
        src = source_of(link.get("href", ""))
        if src and is_image and link.get("rel", "enclosure") == "enclosure":
            return src, ""
    for img in parse_fragment(body_html).xpath("//img[@src]"):
        if src := source_of(img.get("src", "")):
            return src, normalise_space(img.get("alt", ""))
    return "", ""
