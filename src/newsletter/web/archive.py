"""The public archive of ``newsletter serve``: ``/archive/`` and what is under it.

``GET /archive/`` (also ``?page=N``) and ``/archive/page/N/``  the index pages
``GET /archive/feed.xml``                                     the Atom feed
``GET /archive/<slug>/``                                      one issue's web version

Every page comes from one ``archive.site.Site`` kept in memory: a request only asks the
database for a cheap key (read-only, never the write lock, so a send or an unsubscribe
never waits for the archive) and builds the site again when the key changed, that is
when a campaign to a public list finished. Pages carry an ETag and Last-Modified;
If-None-Match or If-Modified-Since that still match get 304. Anything else under
``/archive/`` (a draft, a test send, a private list's issue) is the plain 404 page.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response

from newsletter.archive.query import generation, public_issues
from newsletter.archive.site import NOT_FOUND_MESSAGE, Site, SitePage, build_site, index_path
from newsletter.store import Store
from newsletter.web.context import SECURITY_HEADERS, WebContext
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

# public pages: cacheable, indexable, revalidated with the ETag; images may come from anywhere
ARCHIVE_HEADERS = {
    **{k: v for k, v in SECURITY_HEADERS.items() if k not in ("X-Robots-Tag",)},
    "Cache-Control": "public, no-cache",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def not_modified(request: Request, page: SitePage) -> bool:
    """Whether the client's copy is current: its If-None-Match names the ETag, or (with
    no If-None-Match) its If-Modified-Since is not older than the page."""
    tags = request.headers.get("if-none-match")
    if tags is not None:
        wanted = {tag.strip().removeprefix("W/") for tag in tags.split(",")}
        return "*" in wanted or page.etag in wanted
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return moment.tzinfo is not None and moment >= page.modified.replace(microsecond=0)


class ArchiveRoutes:
    """The archive endpoints of one workspace, with the Site cache of this process."""

    def __init__(self, context: WebContext, ws: Workspace, store: Store) -> None:
        self.context = context
        self.ws = ws
        self.store = store
        self._key: tuple[int, int, str] | None = None
        self._site = Site()
        self._lock = asyncio.Lock()

    def _build(self) -> Site:
        return build_site(self.ws, public_issues(self.store, self.ws))

    async def site(self) -> Site:
        """The archive as of now: the cached Site unless a campaign was published since."""
        key = await self.context.read(generation, self.store, self.ws)
        if key != self._key:
            async with self._lock:
                if key != self._key:
                    self._site = await self.context.read(self._build)
                    self._key = key
                    log.info("archive rebuilt: %d pages", len(self._site.pages))
        return self._site

    async def _answer(self, request: Request, path: str) -> Response:
        page = (await self.site()).pages.get(path)
        if page is None:
            return self.context.error(NOT_FOUND_MESSAGE, 404)
        headers = {
            **ARCHIVE_HEADERS,
            "ETag": page.etag,
            "Last-Modified": _http_date(page.modified),
        }
        if not_modified(request, page):
            return Response(status_code=304, headers=headers)
        return Response(page.body, media_type=page.content_type, headers=headers)

    async def index(self, request: Request) -> Response:
        """``/archive/`` (page 1, or ``?page=N``)."""
        raw = request.query_params.get("page", "1")
        number = int(raw) if raw.isdigit() and len(raw) < 7 else 0
        return await self._answer(request, index_path(number) if number >= 1 else "")

    async def page(self, request: Request) -> Response:
        """``/archive/page/N/``."""
        raw = str(request.path_params["number"])
        number = int(raw) if raw.isdigit() and len(raw) < 7 else 0
        return await self._answer(request, index_path(number) if number >= 2 else "")

    async def feed(self, request: Request) -> Response:
        """``/archive/feed.xml``."""
        return await self._answer(request, "archive/feed.xml")

    async def issue(self, request: Request) -> Response:
        """``/archive/<slug>/``: the web version of a published issue."""
        slug = str(request.path_params["slug"])
        if slug in ("", ".", "..", "page") or "/" in slug:
            return self.context.error(NOT_FOUND_MESSAGE, 404)
        return await self._answer(request, f"archive/{slug}/")
