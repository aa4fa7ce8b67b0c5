"""The starlette app of ``newsletter serve``: its routes, lifespan and health check.

The endpoints live by job: ``web.unsubscribe`` (``/u/``), ``web.subscribe`` (``/subscribe``
and ``/c/``); ``web.context`` holds what they share, ``web.forms`` the form reading.

Routes, at the path of the workspace's base URL (and at ``/`` too, for a reverse proxy
that strips that path):

``GET|HEAD /u/{token}``  confirmation page with one button; changes nothing (mail
                         scanners and link previews fetch every URL in a message)
``POST /u/{token}``      unsubscribes (the page's button, or RFC 8058 one-click with
                         ``List-Unsubscribe=One-Click``, urlencoded or multipart) -> 200
``GET /subscribe``       a hosted sign-up form
``POST /subscribe``      double opt-in request from any HTML form: email, name, list,
                         and the honeypot ``website`` that must stay empty -> 200
``GET /challenge.js``    the hosted form's proof-of-work solver (``web.challenge``)
``GET /c/{token}``       "confirm your subscription" page with one button; changes nothing
``POST /c/{token}``      confirms -> 200, and the welcome message goes out
``GET /healthz``         "ok" when the database answers
``GET /media/{name}``     an image an issue hosts (``web.media``), cached for a year
``GET /archive/...``     the public archive of sent issues and its feed (``web.archive``)

What every answer holds to:

- No redirects, no cookies, no sessions, no authentication: the signed token in the
  URL is the only credential (RFC 8058).
- A change is committed to the database before the answer is sent.
- Every bad token (forged, tampered, truncated, unknown subscriber, wrong list) gets
  the same 404 and the same page, byte for byte. Each one counts against the client
  (``serve.invalid_token_limit_per_minute``); a client over the limit gets 429 on every
  token URL until its window slides, whether its next token is good or not, so the
  refusal tells nothing either.
- A test copy's link (``send --test`` signs it for subscriber 0 of list 0, nobody) gets
  a page saying so, 200, on GET and POST alike, and changes nothing.
- ``POST /subscribe`` answers the same page whether the address is new, pending,
  subscribed, or the request was a bot filling the honeypot; the confirmation message
  goes out after the answer (a background task), so timing tells nothing either.
- The client is ``request.client.host``: behind a reverse proxy listed in
  ``serve.trusted_proxies``, uvicorn sets it from ``X-Forwarded-For``.
- Pages carry ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer`` (the token
  must not leak to another site) and a strict Content-Security-Policy.
- A server error shows the error page, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from newsletter.schedule.due import forget_expired_requests
from newsletter.store import (
    Store,
    open_store_for,
)
from newsletter.web import challenge as ch
from newsletter.web.accesslog import AccessLog
from newsletter.web.archive import ArchiveRoutes
from newsletter.web.context import SECURITY_HEADERS, WebContext
from newsletter.web.forms import MAX_BODY_BYTES
from newsletter.web.mail import Postman
from newsletter.web.media import MediaFiles
from newsletter.web.subscribe import SignUp
from newsletter.web.unsubscribe import UnsubscribeLinks
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def _route(path: str, **by_method: Endpoint) -> Route:
    """One route for ``path`` answering each method in ``by_method`` (GET also answers HEAD)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await by_method[method](request)

    return Route(path, dispatch, methods=list(by_method))


class WebApp:
    """The endpoints of one workspace; ``starlette`` is the ASGI app to serve.

    ``store`` is used from worker threads (SQLAlchemy engines are thread-safe);
    ``postman`` sends confirmation and welcome messages; ``clock`` drives the rate
    limiters (monotonic seconds); ``close_store`` closes ``store`` when the app shuts
    down. Raises RenderError at once when a workspace page template is broken.
    """

    def __init__(
        self,
        ws: Workspace,
        store: Store,
        *,
        postman: Postman | None = None,
        clock: Callable[[], float] | None = None,
        close_store: bool = False,
    ) -> None:
        self.ws = ws
        self.store = store
        self.context = WebContext(ws, store, clock=clock)
        self.unsubscribe = UnsubscribeLinks(self.context)
        self.signup = SignUp(self.context, postman=postman, clock=clock)
        self.postman = self.signup.postman
        self.media = MediaFiles(ws)
        self.archive = ArchiveRoutes(self.context, ws, store)
        self._close_store = close_store
        self.starlette = Starlette(
            routes=self._routes(),
            exception_handlers={
                HTTPException: self.context.http_error,
                Exception: self.context.server_error,
            },
            lifespan=self._lifespan,
            max_body_size=MAX_BODY_BYTES,
            middleware=[Middleware(AccessLog)],
        )
        # /u/abc/ must not 307 to /u/abc: no redirect, ever
        self.starlette.router.redirect_slashes = False

    def _routes(self) -> list[BaseRoute]:
        # one route per path, so a 405 names every method the path answers in Allow
        signup = self.signup
        routes: list[BaseRoute] = [
            _route("/u/{token}", GET=self.unsubscribe.page, POST=self.unsubscribe.post),
            _route("/subscribe", GET=signup.form, POST=signup.subscribe),
            _route(ch.SCRIPT_PATH, GET=signup.challenge_script),
            _route("/c/{token}", GET=signup.confirm_page, POST=signup.confirm),
            _route("/healthz", GET=self.health),
            _route("/media/{name}", GET=self.media.get),
            _route("/archive/", GET=self.archive.index),
            _route("/archive/feed.xml", GET=self.archive.feed),
            _route("/archive/page/{number}/", GET=self.archive.page),
            _route("/archive/{slug}/", GET=self.archive.issue),
        ]
        prefix = urlsplit(self.ws.base_url).path.rstrip("/")
        if not prefix:
            return routes
        return [Mount(prefix, routes=routes), *routes]

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self.unsubscribe.close()
            await run_in_threadpool(self.postman.close)
            if self._close_store:
                self.store.close()

    async def health(self, request: Request) -> Response:
        """``ok`` (200) when the database answers, else 503."""

        def ping() -> None:
            with self.store.read() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await self.context.read(ping)
        except SQLAlchemyError as exc:
            log.error("health check: database unavailable: %s", exc)
            return PlainTextResponse("database unavailable", 503, headers=SECURITY_HEADERS)
        return PlainTextResponse("ok", headers=SECURITY_HEADERS)

    def expire_pending(self) -> int:
        """Forget double opt-in requests older than ``serve.pending_expiry_hours`` -> count."""
        return forget_expired_requests(self.ws, self.store)


def create_app(
    ws: Workspace,
    store: Store | None = None,
    *,
    postman: Postman | None = None,
    clock: Callable[[], float] | None = None,
) -> Starlette:
    """The ASGI app for ``ws``; ``store`` defaults to the workspace's, opened here and
    closed when the app shuts down (a store passed in stays the caller's to close).

    Raises RenderError at once when a workspace page template is broken, StoreError
    when the database cannot be opened.
    """
    own = store is None
    store = store or open_store_for(ws)
    try:
        return WebApp(ws, store, postman=postman, clock=clock, close_store=own).starlette
    except BaseException:
        if own:
            store.close()
        raise
