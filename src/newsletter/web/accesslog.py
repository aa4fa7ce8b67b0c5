"""One log line per request ``serve`` answers, with no token in it.

The signed token in ``/u/{token}`` and ``/c/{token}`` is the only credential a
subscriber has: whoever reads it can unsubscribe or confirm for them. So a logged path
shows ``<token>`` in its place (``shown_path``), here and in every other line that names
a path. The line, at INFO on ``newsletter.web.access``:
``GET /u/<token> 200 3.1 ms 203.0.113.9``. The query string is never logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__.rpartition(".")[0] + ".access")

TOKEN_ROUTES = frozenset({"u", "c"})
TOKEN = "<token>"
MAX_SHOWN = 200


def shown_path(path: str) -> str:
    """``path`` fit for a log: the segment after ``/u/`` or ``/c/`` becomes ``<token>``.

    Works under a base-URL prefix (``/brief/u/...``) too; control characters are escaped
    and the result is cut at MAX_SHOWN characters.
    """
    parts = path.split("/")
    for index in range(1, len(parts)):
        if parts[index - 1] in TOKEN_ROUTES and parts[index]:
            parts[index] = TOKEN
    shown = "/".join(parts)[:MAX_SHOWN]
    return shown.encode("unicode_escape").decode("ascii") if not shown.isprintable() else shown


class AccessLog:
    """ASGI middleware: logs method, shown path, status, milliseconds and client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; log its line once the answer is complete (or failed)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client: Any = scope.get("client")
            log.info(
                "%s %s %d %.1f ms %s",
                scope["method"],
                shown_path(scope["path"]),
                status[0],
                (time.perf_counter() - started) * 1000,
                client[0] if client else "unknown",
            )
