"""Every page of the archive, built once from the published issues.

``build_site(ws, issues)`` -> ``Site``: the files of the archive by their path under
the base URL (``archive/``, ``archive/page/2/``, ``archive/<slug>/``,
``archive/feed.xml``), each with its bytes, type and time. ``serve`` keeps one Site in
memory until a campaign is published (so no request renders anything) and ``archive
build`` writes the same bytes as files. Every URL in them is absolute (the base URL), so
the two are identical byte for byte.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.archive.feed import atom_feed
from newsletter.archive.query import PublicIssue
from newsletter.archive.webpage import WebVersion, public_subject, web_version
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

HTML = "text/html; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
INDEX_TEMPLATE = "pages/archive.html.j2"
FEED_PATH = "archive/feed.xml"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# serve's 404 for every address it has no page for, archive or not
NOT_FOUND_MESSAGE = "There is no page at this address."
ERROR_TEMPLATE = "pages/error.html.j2"


@dataclass(frozen=True)
class SitePage:
    """One file of the archive: ``body``, ``content_type``, ``modified`` (when what it
    shows last changed: Last-Modified) and ``etag`` (a hash of the body, quoted)."""

    body: bytes
    content_type: str
    modified: datetime

    @property
    def etag(self) -> str:
        """The strong ETag of the body."""
        return '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'


@dataclass
class Site:
    """The archive's files by path (no leading slash; a folder path ends with "/"),
    and the issue folders whose ``media/`` files the published issues use."""

    pages: dict[str, SitePage] = field(default_factory=dict)
    media_folders: list[Path] = field(default_factory=list)
    not_found: bytes = b""


@dataclass(frozen=True)
class Entry:
    """One issue as the index and the feed list it."""

    slug: str
    subject: str
    url: str
    sent_at: datetime
    sent_on: date
    description: str


def index_path(page: int) -> str:
    """The path of index page ``page`` (1 -> ``archive/``)."""
    return "archive/" if page == 1 else f"archive/page/{page}/"


def issue_path(slug: str) -> str:
    """The path of the web version of the issue folder named ``slug``."""
    return f"archive/{slug}/"


def build_site(ws: Workspace, issues: list[PublicIssue]) -> Site:
    """All pages for ``issues`` (newest first) -> Site. Raises RenderError for a broken
    page template (naming the file and line)."""
    from newsletter.render.theme import render_template, template_environment

    env = template_environment(ws)
    zone = ZoneInfo(ws.config.publication.timezone)
    site = Site()
    entries: list[Entry] = []
    for issue in issues:
        version: WebVersion = web_version(ws, issue, env)
        site.pages[issue_path(issue.slug)] = SitePage(
            version.html.encode("utf-8"), HTML, issue.sent_at
        )
        entries.append(
            Entry(
                slug=issue.slug,
                subject=public_subject(ws, issue.subject),
                url=version.url,
                sent_at=issue.sent_at,
                sent_on=issue.sent_at.astimezone(zone).date(),
                description=version.description,
            )
        )
        media = issue.folder(ws) / "media"
        if media.is_dir():
            site.media_folders.append(media)
    newest = entries[0].sent_at if entries else EPOCH
    _index_pages(ws, env, entries, newest, site)
    feed = atom_feed(ws, entries[: ws.config.archive.feed_entries], updated=newest)
    site.pages[FEED_PATH] = SitePage(feed, ATOM, newest)
    base = {"publication": ws.config.publication, "base_url": ws.base_url}
    site.not_found = render_template(
        ws, env, ERROR_TEMPLATE, {**base, "message": NOT_FOUND_MESSAGE}
    ).encode("utf-8")
    log.debug("archive built: %d issues, %d pages", len(entries), len(site.pages))
    return site


def _index_pages(
    ws: Workspace, env: Any, entries: list[Entry], newest: datetime, site: Site
) -> None:
    """The index pages (``page_size`` entries each; one empty page when nothing is out)."""
    from newsletter.render.theme import render_template

    size = ws.config.archive.page_size
    count = max(1, math.ceil(len(entries) / size))
    for page in range(1, count + 1):
        html = render_template(
            ws,
            env,
            INDEX_TEMPLATE,
            {
                "publication": ws.config.publication,
                "base_url": ws.base_url,
                "issues": entries[(page - 1) * size : page * size],
                "page": page,
                "pages": count,
                "newer_url": f"{ws.base_url}/{index_path(page - 1)}" if page > 1 else "",
                "older_url": f"{ws.base_url}/{index_path(page + 1)}" if page < count else "",
                "feed_url": f"{ws.base_url}/{FEED_PATH}",
                "canonical_url": f"{ws.base_url}/{index_path(page)}",
            },
        )
        site.pages[index_path(page)] = SitePage(html.encode("utf-8"), HTML, newest)
