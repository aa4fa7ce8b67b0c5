"""The archive's Atom feed (RFC 4287), written with xml.etree: every text and attribute
from an issue goes through the XML writer's escaping, never into a string by hand."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from newsletter.workspace import Workspace

ATOM_NS = "http://www.w3.org/2005/Atom"


class FeedEntry(Protocol):
    """What the feed needs of one issue."""

    @property
    def subject(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def sent_at(self) -> datetime: ...
    @property
    def description(self) -> str: ...


# characters XML 1.0 cannot carry at all: dropped, since escaping cannot help
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(
        parent, f"{{{ATOM_NS}}}{tag}", {k: _NOT_XML.sub("", v) for k, v in attrs.items()}
    )
    if text is not None:
        node.text = _NOT_XML.sub("", text)
    return node


def _when(moment: datetime) -> str:
    """An RFC 3339 time in UTC, seconds precision (a naive time is taken as UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def atom_feed(ws: Workspace, entries: Sequence[FeedEntry], *, updated: datetime) -> bytes:
    """The Atom feed of ``entries`` (newest first), ``updated`` being the newest one's
    time -> UTF-8 XML bytes."""
    ET.register_namespace("", ATOM_NS)
    publication = ws.config.publication
    index_url = f"{ws.base_url}/archive/"
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    if publication.language:
        feed.set("{http://www.w3.org/XML/1998/namespace}lang", publication.language)
    _sub(feed, "id", index_url)
    _sub(feed, "title", publication.name)
    if publication.tagline:
        _sub(feed, "subtitle", publication.tagline)
    _sub(feed, "updated", _when(updated))
    _sub(feed, "link", rel="alternate", type="text/html", href=index_url)
    _sub(feed, "link", rel="self", type="application/atom+xml", href=f"{index_url}feed.xml")
    author = _sub(feed, "author")
    _sub(author, "name", publication.name)
    if publication.website:
        _sub(author, "uri", publication.website)
    for item in entries:
        entry = _sub(feed, "entry")
        _sub(entry, "id", item.url)
        _sub(entry, "title", item.subject)
        _sub(entry, "updated", _when(item.sent_at))
        _sub(entry, "published", _when(item.sent_at))
        _sub(entry, "link", rel="alternate", type="text/html", href=item.url)
        _sub(entry, "summary", item.description)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"
