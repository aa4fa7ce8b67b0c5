"""The starlette app of ``newsletter serve``: unsubscribe, subscribe, confirm, health.

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
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from newsletter.errors import NewsletterError, TokenError
from newsletter.schedule.due import forget_expired_requests
from newsletter.store import (
    AddressError,
    Consent,
    Membership,
    PendingResult,
    Store,
    Subscriber,
    normalize_address,
    open_store_for,
)
from newsletter.store.confirmations import SEND, claim_confirmation_mail
from newsletter.store.schema import ACTIVE, PENDING, UNSUBSCRIBED
from newsletter.tokens import (
    ConfirmTokens,
    ExpiredTokenError,
    UnsubscribeTokens,
    confirm_url,
)
from newsletter.web import challenge as ch
from newsletter.web import pages as p
from newsletter.web.accesslog import AccessLog, shown_path
from newsletter.web.guard import FormOrigins, allowed_origins
from newsletter.web.limits import SlidingWindowLimiter
from newsletter.web.mail import CONFIRM, WELCOME, MessageFactory, Postman
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

T = TypeVar("T")

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
HONEYPOT_FIELD = "website"
# itsdangerous tokens of ours are ~40-60 characters; anything far longer is not ours
MAX_TOKEN_LENGTH = 256
# what a test copy's link names (deliver.offline.TEST_ID): subscriber 0 of list 0, nobody
TEST_COPY_ID = 0
TEST_COPY = "test copy"
MAX_BODY_BYTES = 64 * 1024
MAX_FIELD = 320
MAX_CONSENT_TEXT = 4000
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
class _Member:
    """A subscriber and the list membership a valid token points at."""

    subscriber: Subscriber
    membership: Membership


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _consent(request: Request, **extra: Any) -> Consent:
    """Where a web request came from, for the consent trail."""
    user_agent = request.headers.get("user-agent")
    return Consent(
        source="web",
        ip=_client(request),
        user_agent=user_agent[:1000] if user_agent else None,
        **extra,
    )


def _field(form: FormData | Mapping[str, Any], name: str, limit: int = MAX_FIELD) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


async def _read_form(request: Request) -> FormData:
    """The posted fields (urlencoded or multipart); an unreadable body counts as empty."""
    try:
        return await request.form(max_files=0, max_fields=50, max_part_size=MAX_BODY_BYTES)
    except HTTPException as exc:
        if exc.status_code == 413:  # body over MAX_BODY_BYTES: refuse before changing anything
            raise
        log.info("unreadable form body from %s: %s", _client(request), exc.detail)
        return FormData()
    except Exception as exc:  # anything else unreadable in the body: no fields
        log.info("unreadable form body from %s: %s", _client(request), exc)
        return FormData()


Endpoint = Callable[[Request], Awaitable[Response]]


def _route(path: str, **by_method: Endpoint) -> Route:
    """One route for ``path`` answering each method in ``by_method`` (GET also answers HEAD)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await by_method[method](request)

    return Route(path, dispatch, methods=list(by_method))


def _unstorable(form: FormData) -> bool:
    """Whether a field name or value holds NUL, which PostgreSQL text cannot store."""
    return any(
        "\x00" in key or (isinstance(value, str) and "\x00" in value)
        for key, value in form.multi_items()
    )


class WebApp:
    """The endpoints of one workspace; ``starlette`` is the ASGI app to serve.

    ``store`` is used from worker threads (SQLAlchemy engines are thread-safe);
    ``postman`` sends confirmation and welcome messages; ``clock`` drives the rate
    limiters (monotonic seconds).
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
        serve = ws.config.serve
        keys = ws.secret_keys()
        self.unsubscribe_tokens = UnsubscribeTokens(keys)
        self.confirm_tokens = ConfirmTokens(keys)
        self.pending_max_age = serve.pending_expiry_hours * 3600
        self.pages = p.Pages(ws)
        self.pages.check()
        self.challenge = ch.FormChallenge(
            serve.form_challenge, keys, bits=serve.form_challenge_bits
        )
        self.challenge.check_page(self.pages)
        self.messages = MessageFactory(ws)
        self.postman = postman or Postman(ws)
        limiter_args: dict[str, Any] = {} if clock is None else {"clock": clock}
        self.invalid_tokens = SlidingWindowLimiter(
            serve.invalid_token_limit_per_minute, **limiter_args
        )
        self.subscribe_requests = SlidingWindowLimiter(
            serve.subscribe_limit_per_minute, **limiter_args
        )
        self.form_origins = FormOrigins(allowed_origins(ws))
        self.confirmation_every = timedelta(minutes=serve.confirmation_mail_every_minutes)
        self.default_list = ws.config.send.list
        self.public_lists = tuple(serve.subscribe_lists) or (self.default_list,)
        self._close_store = close_store
        self._writer = anyio.CapacityLimiter(1)
        self._readers = anyio.CapacityLimiter(READ_THREADS)
        self.starlette = Starlette(
            routes=self._routes(),
            exception_handlers={
                HTTPException: self._http_error,
                Exception: self._server_error,
            },
            lifespan=self._lifespan,
            max_body_size=MAX_BODY_BYTES,
            middleware=[Middleware(AccessLog)],
        )
        # /u/abc/ must not 307 to /u/abc: no redirect, ever
        self.starlette.router.redirect_slashes = False

    # -- plumbing --------------------------------------------------------------------------

    def _routes(self) -> list[BaseRoute]:
        # one route per path, so a 405 names every method the path answers in Allow
        routes: list[BaseRoute] = [
            _route("/u/{token}", GET=self.unsubscribe_page, POST=self.unsubscribe),
            _route("/subscribe", GET=self.subscribe_form, POST=self.subscribe),
            _route(ch.SCRIPT_PATH, GET=self.challenge_script),
            _route("/c/{token}", GET=self.confirm_page, POST=self.confirm),
            _route("/healthz", GET=self.health),
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
            await run_in_threadpool(self.postman.close)
            if self._close_store:
                self.store.close()

    async def _write(self, change: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the store ``change`` in a worker thread, one at a time in this process.

        SQLite lets one writer in at a time; threads racing for its lock would wait in
        its busy handler, which sleeps in steps of up to 100 ms. Queueing here instead
        hands the lock on at once, and a queued write holds no thread meanwhile.
        """
        return await anyio.to_thread.run_sync(
            functools.partial(change, *args, **kwargs), limiter=self._writer
        )

    async def _read(self, query: Callable[..., T], *args: Any) -> T:
        """Run the store ``query`` in a worker thread, at most ``READ_THREADS`` at once.

        More threads than pooled connections would make SQLAlchemy open and close
        overflow connections (each running the SQLite set-up again) and fight over the
        GIL (bench_pages: 101 pages/s with 40 threads, ~170 with this bound).
        """
        return await anyio.to_thread.run_sync(query, *args, limiter=self._readers)

    def _page(
        self,
        name: str,
        status: int = 200,
        *,
        background: BackgroundTask | None = None,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        content = self.pages.render(name, **context)
        return HTMLResponse(
            content,
            status_code=status,
            headers={**SECURITY_HEADERS, **(headers or {})},
            background=background,
        )

    def _error(
        self, message: str, status: int, headers: Mapping[str, str] | None = None
    ) -> HTMLResponse:
        return HTMLResponse(
            self.pages.error_page(message),
            status_code=status,
            headers={**SECURITY_HEADERS, **(headers or {})},
        )

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return self._error("There is no page at this address.", 404)
        if status == 405:
            allow = exc.headers if isinstance(exc, HTTPException) else None
            return self._error("This address does not answer that kind of request.", 405, allow)
        if status == 413:
            return self._error("That request was too large.", 413)
        return self._error("The request could not be handled.", status)

    async def _server_error(self, request: Request, exc: Exception) -> Response:
        log.error(
            "error answering %s %s", request.method, shown_path(request.url.path), exc_info=exc
        )
        return self._error("Something broke on our side. Please try again in a few minutes.", 500)

    def _too_many(self, client: str) -> HTMLResponse:
        return self._error(
            "Too many requests from your address. Please wait a minute and try again.",
            429,
            {"Retry-After": str(self.invalid_tokens.retry_after(client) or 60)},
        )

    def _unstorable_form(self) -> HTMLResponse:
        return self._error(
            "The form held a character that cannot be stored (a NUL byte). "
            "Go back, retype the fields and send it again.",
            400,
        )

    def _invalid(self, client: str) -> HTMLResponse:
        self.invalid_tokens.hit(client)
        log.info("invalid link from %s", client)
        return self._page(p.INVALID_LINK, 404)

    # -- resolving tokens (run in worker threads: they read the database) -------------------

    def _member(
        self,
        subscriber_id: int,
        list_id: int,
        owned_by: Callable[[str | None], bool] | None = None,
    ) -> _Member | None:
        """The member, if ``owned_by`` (a token's check, None when done) accepts them."""
        subscriber = self.store.get(subscriber_id)
        # the id alone is not enough: the token must have been made for this person
        if subscriber is None or (owned_by is not None and not owned_by(subscriber.email)):
            return None
        for membership in subscriber.memberships:
            if membership.list_id == list_id:
                return _Member(subscriber, membership)
        return None

    def _unsubscribe_target(self, token: str) -> tuple[_Member, int | None] | str | None:
        """(member, campaign id) a token names; TEST_COPY for a test copy's; None if invalid."""
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            claim = self.unsubscribe_tokens.read(token)
        except TokenError:
            return None
        if claim.subscriber_id == claim.list_id == TEST_COPY_ID:
            # signed by us, so telling it apart reveals nothing a forger could use
            return TEST_COPY
        owned_by = functools.partial(self.unsubscribe_tokens.owned_by, claim)
        member = self._member(claim.subscriber_id, claim.list_id, owned_by)
        return None if member is None else (member, claim.campaign_id)

    def _confirm_target(self, token: str) -> _Member | str | None:
        """The member a confirm token names; None if invalid; "expired" if too old."""
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            claim = self.confirm_tokens.read(token, max_age_seconds=self.pending_max_age)
        except ExpiredTokenError:
            return "expired"
        except TokenError:
            return None
        owned_by = functools.partial(self.confirm_tokens.owned_by, claim)
        return self._member(claim.subscriber_id, claim.list_id, owned_by)

    # -- unsubscribe ---------------------------------------------------------------------------

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET/HEAD: the confirmation page; never changes anything."""
        client = _client(request)
        if self.invalid_tokens.blocked(client):
            return self._too_many(client)
        target = await self._read(self._unsubscribe_target, request.path_params["token"])
        if target is None:
            return self._invalid(client)
        if isinstance(target, str):  # TEST_COPY: nothing to change, and not a bad link
            return self._page(p.TEST_COPY_LINK)
        member, _ = target
        already_left = (
            member.membership.status == UNSUBSCRIBED or member.subscriber.status != ACTIVE
        )
        return self._page(
            p.CONFIRM_UNSUBSCRIBE,
            email=member.subscriber.email,
            list_name=member.membership.list_name,
            already_left=already_left,
        )

    async def unsubscribe(self, request: Request) -> Response:
        """POST: unsubscribe from the token's list, committed before answering 200."""
        client = _client(request)
        if self.invalid_tokens.blocked(client):
            return self._too_many(client)
        target = await self._read(self._unsubscribe_target, request.path_params["token"])
        if target is None:
            return self._invalid(client)
        if isinstance(target, str):  # TEST_COPY: nothing to change, and not a bad link
            return self._page(p.TEST_COPY_LINK)
        member, campaign_id = target
        form = await _read_form(request)
        one_click = _field(form, ONE_CLICK_FIELD) == ONE_CLICK_VALUE
        via = "page" if _field(form, "via") == "page" else ("one-click" if one_click else "post")
        detail: dict[str, Any] = {"via": via}
        if campaign_id is not None:
            detail["campaign_id"] = campaign_id
        changed = await self._write(
            self.store.unsubscribe,
            member.subscriber.id,
            consent=_consent(request, detail=detail),
            list_name=member.membership.list_name,
        )
        if changed:
            log.info(
                "unsubscribed subscriber %d from %s (%s)",
                member.subscriber.id,
                member.membership.list_name,
                via,
            )
        return self._page(
            p.UNSUBSCRIBED,
            email=member.subscriber.email,
            list_name=member.membership.list_name,
        )

    # -- subscribe -----------------------------------------------------------------------------

    async def subscribe_form(self, request: Request) -> Response:
        """GET /subscribe: the hosted sign-up form."""
        wanted = request.query_params.get("list", "")
        list_name = wanted if wanted in self.public_lists else self.default_list
        issued = self.challenge.issue()
        # a no-referrer page posts "Origin: null", which the origin check refuses
        headers = {"Referrer-Policy": "same-origin"}
        if issued is not None:
            csp = SECURITY_HEADERS["Content-Security-Policy"]
            headers["Content-Security-Policy"] = ch.with_script(csp)
        return self._page(
            p.SUBSCRIBE_FORM,
            list_name=list_name,
            lists=list(self.public_lists),
            challenge=issued,
            headers=headers,
        )

    async def challenge_script(self, request: Request) -> Response:
        """GET /challenge.js: the script that solves the form's challenge in the browser."""
        return ch.script_response(self.pages)

    async def subscribe(self, request: Request) -> Response:
        """POST /subscribe: record a pending subscription and mail a confirm link."""
        client = _client(request)
        if self.subscribe_requests.blocked(client):
            return self._error(
                "Too many sign-ups from your address. Please wait a minute and try again.",
                429,
                {"Retry-After": str(self.subscribe_requests.retry_after(client) or 60)},
            )
        self.subscribe_requests.hit(client)
        form = await _read_form(request)
        if _unstorable(form):
            return self._unstorable_form()
        list_name = _field(form, "list") or self.default_list
        if list_name not in self.public_lists:
            return self._error("This sign-up form points at a list that does not exist.", 400)
        raw_email = _field(form, "email")
        try:
            email = normalize_address(raw_email)
        except AddressError:
            return self._error(
                "That does not look like an email address. Go back and check it.", 400
            )
        answer: dict[str, Any] = {"email": email, "list_name": list_name}
        if _field(form, HONEYPOT_FIELD):
            log.info("honeypot filled from %s: ignored", client)
            return self._page(p.CHECK_INBOX, **answer)
        if not self.form_origins.allows(request.headers, str(request.base_url)):
            sender = self.form_origins.sender(request.headers) or ""
            log.info("sign-up posted from another site %r: ignored", sender[:100])
            return self._page(p.CHECK_INBOX, **answer)
        if not self.challenge.accepts(form):
            log.info("sign-up without a solved form challenge from %s: ignored", client)
            return self._page(p.CHECK_INBOX, **answer)
        consent = _consent(
            request,
            text=_field(form, "consent_text", MAX_CONSENT_TEXT) or None,
            version=_field(form, "consent_version")[:64] or None,
            detail={
                "step": "request",
                "form": _field(form, "form") or None,
                "page": request.headers.get("referer") or request.headers.get("origin"),
            },
        )
        name = " ".join(_field(form, "name").split())[:200]
        pending = await self._write(
            self.store.add_pending, email, list_name=list_name, consent=consent, name=name
        )
        task = None
        if pending.status == PENDING:
            task = BackgroundTask(self._send_confirmation, pending, list_name, consent)
        else:
            log.info("subscribe request for an active member of %s: nothing sent", list_name)
        return self._page(p.CHECK_INBOX, background=task, **answer)

    async def _send_confirmation(
        self, pending: PendingResult, list_name: str, consent: Consent
    ) -> None:
        """Send the confirm message after the answer went out, if the address may get one.

        Whether it may (not mailed within ``serve.confirmation_mail_every_minutes``, not
        bounced, complained or erased) is decided here, so the answer never tells.
        """
        decision = await self._write(
            claim_confirmation_mail,
            self.store,
            pending.subscriber_id,
            pending.list_id,
            every=self.confirmation_every,
            consent=consent,
        )
        if decision != SEND:
            log.info("no confirmation mail to subscriber %d: %s", pending.subscriber_id, decision)
            return
        await anyio.to_thread.run_sync(
            self._mail, CONFIRM, pending.subscriber_id, pending.list_id, list_name
        )

    def _mail(self, kind: str, subscriber_id: int, list_id: int, list_name: str) -> None:
        try:
            subscriber = self.store.get(subscriber_id)
            if subscriber is None:
                return
            extra: dict[str, Any] = {}
            if kind == CONFIRM:
                token = self.confirm_tokens.make(subscriber_id, list_id, email=subscriber.email)
                extra = {
                    "confirm_url": confirm_url(self.ws.base_url, token),
                    "expiry_hours": f"{self.ws.config.serve.pending_expiry_hours:g}",
                }
            message = self.messages.build(
                kind,
                subscriber_id=subscriber_id,
                email=subscriber.email,
                name=subscriber.name,
                list_id=list_id,
                list_name=list_name,
                extra=extra,
            )
            self.postman.send(message)
            log.info("sent the %s message to subscriber %d", kind, subscriber_id)
        except NewsletterError as exc:
            log.error(
                "could not send the %s message to subscriber %d: %s", kind, subscriber_id, exc
            )
        except Exception:
            log.exception("could not send the %s message to subscriber %d", kind, subscriber_id)

    # -- confirm ---------------------------------------------------------------------------

    async def _confirm_member(self, request: Request) -> _Member | Response:
        """The member a confirm link names, or the refusal page to answer with instead."""
        client = _client(request)
        if self.invalid_tokens.blocked(client):
            return self._too_many(client)
        target = await self._read(self._confirm_target, request.path_params["token"])
        if target == "expired":
            return self._page(p.LINK_EXPIRED, 410)
        if not isinstance(target, _Member) or target.membership.status == UNSUBSCRIBED:
            return self._invalid(client)
        return target

    async def confirm_page(self, request: Request) -> Response:
        """GET /c/{token}: the "confirm your subscription" page; changes nothing."""
        target = await self._confirm_member(request)
        if isinstance(target, Response):
            return target
        answer: dict[str, Any] = {
            "email": target.subscriber.email,
            "list_name": target.membership.list_name,
        }
        if target.membership.status == ACTIVE and target.subscriber.status == ACTIVE:
            return self._page(p.SUBSCRIBED, **answer)
        consent = self.pages.consent(target.membership.list_name)
        return self._page(
            p.CONFIRM_SUBSCRIPTION,
            consent_text=consent.text,
            consent_version=consent.version,
            **answer,
        )

    async def confirm(self, request: Request) -> Response:
        """POST /c/{token}: activate the pending membership, record consent, send welcome."""
        member = await self._confirm_member(request)
        if isinstance(member, Response):
            return member
        list_name = member.membership.list_name
        answer: dict[str, Any] = {"email": member.subscriber.email, "list_name": list_name}
        form = await _read_form(request)
        if _unstorable(form):
            return self._unstorable_form()
        consent_text = self.pages.consent(list_name)
        detail: dict[str, Any] = {"step": "confirm"}
        shown = _field(form, "consent_version")
        if shown and shown != consent_text.version:
            detail["shown_version"] = shown[:64]
        consent = _consent(
            request, text=consent_text.text, version=consent_text.version, detail=detail
        )
        changed = await self._write(
            self.store.confirm, member.subscriber.id, list_name, consent=consent
        )
        task = None
        if changed:
            log.info("subscriber %d confirmed %s", member.subscriber.id, list_name)
            task = BackgroundTask(
                self._mail, WELCOME, member.subscriber.id, member.membership.list_id, list_name
            )
        else:
            # nothing to confirm: fine if already active (a second click), else the
            # request expired or was withdrawn meanwhile
            now = await self._read(self._member, member.subscriber.id, member.membership.list_id)
            if now is None or not (
                now.membership.status == ACTIVE and now.subscriber.status == ACTIVE
            ):
                return self._page(p.LINK_EXPIRED, 410)
        return self._page(p.SUBSCRIBED, background=task, **answer)

    # -- health ----------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """``ok`` (200) when the database answers, else 503."""

        def ping() -> None:
            with self.store.read() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await self._read(ping)
        except SQLAlchemyError as exc:
            log.error("health check: database unavailable: %s", exc)
            return PlainTextResponse("database unavailable", 503, headers=SECURITY_HEADERS)
        return PlainTextResponse("ok", headers=SECURITY_HEADERS)

    # -- housekeeping ----------------------------------------------------------------------

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
