"""Tell what kind of article source some bytes are, and turn them into text.

In: raw bytes, a file name (for its extension) and, for URLs, the HTTP content type.
Out: a ``Kind`` and a decoded ``str``; a ``SourceError`` naming the source when the
bytes are empty, binary or not text in an encoding we can trust.

Content beats extension when it is unambiguous: a ``.txt`` that holds an HTML page is
read as HTML, a ``.html`` that holds an RSS feed as a feed.
"""

from __future__ import annotations

import codecs
import logging
import re
from enum import Enum
from pathlib import PurePath

from newsletter.errors import SourceError

log = logging.getLogger(__name__)


class Kind(Enum):
    """The kinds of source one reader each handles."""

    TEXT = "text"
    HTML = "html"
    MARKDOWN = "markdown"
    FEED = "feed"


KIND_BY_EXTENSION: dict[str, Kind] = {
    ".txt": Kind.TEXT,
    ".text": Kind.TEXT,
    ".html": Kind.HTML,
    ".htm": Kind.HTML,
    ".xhtml": Kind.HTML,
    ".md": Kind.MARKDOWN,
    ".markdown": Kind.MARKDOWN,
    ".mdown": Kind.MARKDOWN,
    ".xml": Kind.FEED,
    ".rss": Kind.FEED,
    ".atom": Kind.FEED,
    ".feed": Kind.FEED,
}

_FEED_ROOT = re.compile(rb"<(?:rss|feed|rdf:rdf)[\s>]", re.IGNORECASE)
_HTML_START = re.compile(
    rb"^(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]", re.I | re.S
)
_HTML_TAGS = re.compile(rb"<(?:html|head|body|article|div|p|meta|title)[\s>]", re.IGNORECASE)
_MARKDOWN_HEADING = re.compile(rb"^#{1,6}[ \t]+\S")
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def kind_from_name(name: str) -> Kind | None:
    """The kind a file's extension suggests (``None`` for an unknown extension)."""
    return KIND_BY_EXTENSION.get(PurePath(name).suffix.lower())


def kind_from_content_type(content_type: str) -> Kind | None:
    """The kind an HTTP Content-Type suggests ("text/html; charset=..." -> HTML)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in {"text/html", "application/xhtml+xml"}:
        return Kind.HTML
    if "rss" in mime or "atom" in mime or mime.endswith("/xml") or mime.endswith("+xml"):
        return Kind.FEED
    if mime in {"text/markdown", "text/x-markdown"}:
        return Kind.MARKDOWN
    if mime == "text/plain":
        return Kind.TEXT
    return None


def sniff_kind(data: bytes, hint: Kind | None) -> Kind:
    """Decide the kind from the first bytes of ``data``, falling back to ``hint``, then TEXT."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    lowered = head.lower()
    if _FEED_ROOT.search(lowered) and b"<html" not in lowered:
        return Kind.FEED
    if _HTML_START.match(lowered):
        return Kind.HTML
    if head.startswith(b"---") and hint in (None, Kind.TEXT, Kind.MARKDOWN):
        return Kind.MARKDOWN
    looks_like_markup = lowered.startswith(b"<") and len(_HTML_TAGS.findall(lowered)) >= 2
    if looks_like_markup and hint in (None, Kind.TEXT):
        return Kind.HTML  # a page fragment saved as .txt
    if hint is Kind.HTML and b"<" not in head:
        return Kind.TEXT  # text saved with an .html name: there is no markup to parse
    if hint is not None:
        return hint
    if _MARKDOWN_HEADING.match(head):
        return Kind.MARKDOWN
    return Kind.TEXT


def check_bytes(data: bytes, source: str) -> None:
    """Refuse empty and binary content with a ``SourceError`` naming ``source``."""
    if not data.strip():
        raise SourceError(f"{source} is empty", hint="add the article text or leave the file out")
    for bom, name in _BOMS[1:]:
        if data.startswith(bom):
            raise SourceError(
                f"{source} is {name.upper()} text, not UTF-8", hint="save it as UTF-8"
            )
    if b"\x00" in data:
        raise SourceError(
            f"{source} is a binary file, not an article",
            hint="give a .txt, .html, .md or feed file",
        )


def decode_utf8(data: bytes, source: str) -> str:
    """Decode UTF-8 (a BOM is allowed); anything else is a ``SourceError``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{source} is not UTF-8 text (byte {exc.start} is invalid)", hint="save it as UTF-8"
        ) from None


def decode_html(data: bytes, source: str, *, declared: str = "") -> str:
    """Decode an HTML page, honouring the charset it declares.

    In: the bytes, and the charset the HTTP header declared (if any). The header wins,
    then a BOM, then ``<meta charset>``; undeclared pages are read as UTF-8, and as
    windows-1252 (what browsers assume for legacy pages) when they are not valid UTF-8.
    Out: the page as ``str``.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(name, errors="replace")
    meta = _META_CHARSET.search(data[:8192])
    for candidate in (declared, meta.group(1).decode("ascii") if meta else ""):
        codec = _codec(candidate)
        if codec:
            return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        log.warning("%s declares no charset and is not UTF-8; reading it as windows-1252", source)
        return data.decode("cp1252", errors="replace")


def _codec(name: str) -> str:
    """The Python codec for a declared charset name, or "" when it is unknown."""
    if not name:
        return ""
    try:
        codec = codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return ""
    # Pages that say latin-1 are written in windows-1252 (the HTML standard maps them so).
    return "cp1252" if codec in {"latin-1", "iso8859-1", "ascii"} else codec
