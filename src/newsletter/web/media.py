"""``GET /media/<name>``: the images issues host, from the issue folders' media/.

Names are content hashes (``newsletter.media``), so an answer never changes: it is sent
with ``Cache-Control: public, max-age=31536000, immutable`` and the name as its ETag
(a matching ``If-None-Match`` gets 304). Only names compose writes are looked up; an
index of the issue folders' media files is kept and read again, at most once per
``RESCAN_SECONDS``, when a name is missing (an issue composed while serving).

In: the workspace. Out: the route's endpoint, ``MediaFiles.get``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from newsletter.media import MEDIA_NAME, content_type, media_index
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

CACHE_FOREVER = "public, max-age=31536000, immutable"
RESCAN_SECONDS = 2.0


class MediaFiles:
    """The hosted images of ``ws``'s issue folders, by name; ``clock`` gives monotonic
    seconds (the rescan limit)."""

    def __init__(self, ws: Workspace, *, clock: Callable[[], float] | None = None) -> None:
        self.issues_dir = ws.issues_dir
        self.clock = clock or time.monotonic
        self._index: dict[str, Path] = {}
        self._scanned_at: float | None = None
        self._lock = threading.Lock()

    def find(self, name: str) -> Path | None:
        """The file of media ``name``, or None (read the index again when it may be stale)."""
        with self._lock:
            path = self._index.get(name)
            now = self.clock()
            stale = self._scanned_at is None or now - self._scanned_at >= RESCAN_SECONDS
            if (path is None or not path.is_file()) and stale:
                self._index = media_index(self.issues_dir)
                self._scanned_at = now
                path = self._index.get(name)
        return path if path is not None and path.is_file() else None

    def _read(self, name: str) -> bytes | None:
        path = self.find(name)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc.strerror or exc)
            return None

    async def get(self, request: Request) -> Response:
        """The image named in the path, 304 when the client has it, else 404."""
        name = request.path_params["name"]
        if not MEDIA_NAME.fullmatch(name):
            raise HTTPException(404)
        etag = f'"{name.split(".")[0]}"'
        headers = {
            "Cache-Control": CACHE_FOREVER,
            "ETag": etag,
            "X-Content-Type-Options": "nosniff",
        }
        data = await run_in_threadpool(self._read, name)
        if data is None:
            raise HTTPException(404)
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=content_type(name), headers=headers)
