"""What every ``serve`` endpoint shares: the store and its worker threads, the pages,
the bad-token limiter, the member a token names, and the answers every route may give.

Every answer carries ``SECURITY_HEADERS``: no caching, no referrer (the token in the URL
must not leak to another site), a strict Content-Security-Policy.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.store import Membership, Store, Subscriber
from newsletter.web import pages as p
from newsletter.web.accesslog import shown_path
from newsletter.web.limits import SlidingWindowLimiter
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

T = TypeVar("T")

# worker threads reading the database at once, plus one writer (SQLAlchemy's pool keeps 5)
READ_THREADS = 4

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


@dataclass(frozen=True)
class Member:
    """A subscriber and the list membership a valid token points at."""

    subscriber: Subscriber
    membership: Membership


def limiter_options(clock: Callable[[], float] | None) -> dict[str, Any]:
    """Keyword arguments giving a SlidingWindowLimiter ``clock`` (None: its own)."""
    return {} if clock is None else {"clock": clock}


class WebContext:
    """The shared part of the endpoints of one workspace.

    ``store`` is used from worker threads (SQLAlchemy engines are thread-safe);
    ``clock`` drives the bad-token limiter (monotonic seconds). Raises RenderError at
    once when a workspace page template is broken.
    """

    def __init__(
        self, ws: Workspace, store: Store, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.ws = ws
        self.store = store
        self.pages = p.Pages(ws)
        self.pages.check()
        self.invalid_tokens = SlidingWindowLimiter(
            ws.config.serve.invalid_token_limit_per_minute, **limiter_options(clock)
        )
        self._writer = anyio.CapacityLimiter(1)
        self._readers = anyio.CapacityLimiter(READ_THREADS)

    # -- the store, from worker threads -------------------------------------------------------

    async def write(self, change: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the store ``change`` in a worker thread, one at a time in this process.

        SQLite lets one writer in at a time; threads racing for its lock would wait in
        its busy handler, which sleeps in steps of up to 100 ms. Queueing here instead
        hands the lock on at once, and a queued write holds no thread meanwhile.
        """
        return await anyio.to_thread.run_sync(
            functools.partial(change, *args, **kwargs), limiter=self._writer
        )

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """Run the store ``query`` in a worker thread, at most ``READ_THREADS`` at once.

        More threads than pooled connections would make SQLAlchemy open and close
        overflow connections (each running the SQLite set-up again) and fight over the GIL.
        """
        return await anyio.to_thread.run_sync(query, *args, limiter=self._readers)

    def member(
        self,
        subscriber_id: int,
        list_id: int,
        owned_by: Callable[[str | None], bool] | None = None,
    ) -> Member | None:
        """The member, if ``owned_by`` (a token's check, None when done) accepts them.

        Reads the database: call it from a worker thread.
        """
        subscriber = self.store.get(subscriber_id)
        # the id alone is not enough: the token must have been made for this person
        if subscriber is None or (owned_by is not None and not owned_by(subscriber.email)):
            return None
        for membership in subscriber.memberships:
            if membership.list_id == list_id:
                return Member(subscriber, membership)
        return None

    # -- answers ---------------------------------------------------------------------------

    def page(
        self,
        name: str,
        status: int = 200,
        *,
        background: BackgroundTask | None = None,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """Page ``name`` rendered with ``context``, with the security headers (and ``headers``)."""
        content = self.pages.render(name, **context)
        return HTMLResponse(
            content,
            status_code=status,
            headers={**SECURITY_HEADERS, **(headers or {})},
            background=background,
        )

    def error(
        self, message: str, status: int, headers: Mapping[str, str] | None = None
    ) -> HTMLResponse:
        """The error page saying ``message``, with ``status``."""
        return HTMLResponse(
            self.pages.error_page(message),
            status_code=status,
            headers={**SECURITY_HEADERS, **(headers or {})},
        )

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """The error page for a 404, 405, 413 or other refusal starlette raised."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return self.error("There is no page at this address.", 404)
        if status == 405:
            allow = exc.headers if isinstance(exc, HTTPException) else None
            return self.error("This address does not answer that kind of request.", 405, allow)
        if status == 413:
            return self.error("That request was too large.", 413)
        return self.error("The request could not be handled.", status)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        """The error page for an exception, logged with its traceback (never shown)."""
        log.error(
            "error answering %s %s", request.method, shown_path(request.url.path), exc_info=exc
        )
        return self.error("Something broke on our side. Please try again in a few minutes.", 500)

    def too_many(self, client: str) -> HTMLResponse:
        """429 for a client over the bad-token limit."""
        return self.error(
            "Too many requests from your address. Please wait a minute and try again.",
            429,
            {"Retry-After": str(self.invalid_tokens.retry_after(client) or 60)},
        )

    def unstorable_form(self) -> HTMLResponse:
        """400 for a form holding a NUL byte."""
        return self.error(
            "The form held a character that cannot be stored (a NUL byte). "
            "Go back, retype the fields and send it again.",
            400,
        )

    def invalid(self, client: str) -> HTMLResponse:
        """The one 404 page for every bad token, counted against ``client``."""
        self.invalid_tokens.hit(client)
        log.info("invalid link from %s", client)
        return self.page(p.INVALID_LINK, 404)
