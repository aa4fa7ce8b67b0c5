"""Double opt-in: ``/subscribe`` (the hosted form and its POST) and ``/c/{token}``.

``POST /subscribe`` takes email, name, list and the honeypot ``website`` (which must
stay empty) from any HTML form and answers the same page whether the address is new,
pending, subscribed, suppressed, or the request came from a bot, another site or
without a solved challenge; the confirmation message goes out after the answer (a
background task), so timing tells nothing either. ``GET /c/{token}`` shows a "confirm
your subscription" page and changes nothing; ``POST /c/{token}`` activates the
membership, records the consent text shown, and sends the welcome message.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio.to_thread
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from newsletter.errors import AddressError, ExpiredTokenError, NewsletterError, TokenError
from newsletter.mail.tokens import ConfirmTokens, confirm_url
from newsletter.store import Consent, PendingResult, normalize_address
from newsletter.store.confirmations import SEND, claim_confirmation_mail
from newsletter.store.schema import ACTIVE, PENDING, UNSUBSCRIBED
from newsletter.web import challenge as ch
from newsletter.web import pages as p
from newsletter.web.context import (
    SECURITY_HEADERS,
    Member,
    WebContext,
    limiter_options,
)
from newsletter.web.forms import (
    MAX_CONSENT_TEXT,
    client_address,
    consent_of,
    field,
    holds_nul,
    read_form,
)
from newsletter.web.guard import FormOrigins, allowed_origins
from newsletter.web.limits import SlidingWindowLimiter
from newsletter.web.mail import CONFIRM, WELCOME, MessageFactory, Postman

log = logging.getLogger(__name__)

HONEYPOT_FIELD = "website"
EXPIRED = "expired"


class SignUp:
    """The sign-up form, the confirm link and the two messages they send.

    ``postman`` sends the confirmation and welcome messages; ``clock`` drives the
    sign-up limiter (monotonic seconds). Raises RenderError when a page is broken.
    """

    def __init__(
        self,
        context: WebContext,
        *,
        postman: Postman | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        ws = context.ws
        serve = ws.config.serve
        self.context = context
        keys = ws.secret_keys()
        self.tokens = ConfirmTokens(keys)
        self.pending_max_age = serve.pending_expiry_hours * 3600
        self.challenge = ch.FormChallenge(
            serve.form_challenge, keys, bits=serve.form_challenge_bits
        )
        self.challenge.check_page(context.pages)
        self.messages = MessageFactory(ws)
        self.postman = postman or Postman(ws)
        self.requests = SlidingWindowLimiter(
            serve.subscribe_limit_per_minute, **limiter_options(clock)
        )
        self.form_origins = FormOrigins(allowed_origins(ws))
        self.confirmation_every = timedelta(minutes=serve.confirmation_mail_every_minutes)
        self.default_list = ws.config.send.list
        self.public_lists = tuple(serve.subscribe_lists) or (self.default_list,)

    # -- subscribe -----------------------------------------------------------------------------

    async def form(self, request: Request) -> Response:
        """GET /subscribe: the hosted sign-up form."""
        wanted = request.query_params.get("list", "")
        list_name = wanted if wanted in self.public_lists else self.default_list
        issued = self.challenge.issue()
        # a no-referrer page posts "Origin: null", which the origin check refuses
        headers = {"Referrer-Policy": "same-origin"}
        if issued is not None:
            csp = SECURITY_HEADERS["Content-Security-Policy"]
            headers["Content-Security-Policy"] = ch.with_script(csp)
        return self.context.page(
            p.SUBSCRIBE_FORM,
            list_name=list_name,
            lists=list(self.public_lists),
            challenge=issued,
            headers=headers,
        )

    async def challenge_script(self, request: Request) -> Response:
        """GET /challenge.js: the script that solves the form's challenge in the browser."""
        return ch.script_response(self.context.pages)

    async def subscribe(self, request: Request) -> Response:
        """POST /subscribe: record a pending subscription and mail a confirm link."""
        context = self.context
        client = client_address(request)
        if self.requests.blocked(client):
            return context.error(
                "Too many sign-ups from your address. Please wait a minute and try again.",
                429,
                {"Retry-After": str(self.requests.retry_after(client) or 60)},
            )
        self.requests.hit(client)
        form = await read_form(request)
        if holds_nul(form):
            return context.unstorable_form()
        list_name = field(form, "list") or self.default_list
        if list_name not in self.public_lists:
            return context.error("This sign-up form points at a list that does not exist.", 400)
        try:
            email = normalize_address(field(form, "email"))
        except AddressError:
            return context.error(
                "That does not look like an email address. Go back and check it.", 400
            )
        answer: dict[str, Any] = {"email": email, "list_name": list_name}
        if self._ignored(request, form):
            return context.page(p.CHECK_INBOX, **answer)
        consent = self._request_consent(request, form)
        name = " ".join(field(form, "name").split())[:200]
        pending = await context.write(
            context.store.add_pending, email, list_name=list_name, consent=consent, name=name
        )
        task = None
        if pending.status == PENDING:
            task = BackgroundTask(self._send_confirmation, pending, list_name, consent)
        else:
            log.info("subscribe request for an active member of %s: nothing sent", list_name)
        return context.page(p.CHECK_INBOX, background=task, **answer)

    def _ignored(self, request: Request, form: FormData) -> bool:
        """Whether a sign-up is a bot's, another site's or unsolved: answered, not stored."""
        client = client_address(request)
        if field(form, HONEYPOT_FIELD):
            log.info("honeypot filled from %s: ignored", client)
            return True
        if not self.form_origins.allows(request.headers, str(request.base_url)):
            sender = self.form_origins.sender(request.headers) or ""
            log.info("sign-up posted from another site %r: ignored", sender[:100])
            return True
        if not self.challenge.accepts(form):
            log.info("sign-up without a solved form challenge from %s: ignored", client)
            return True
        return False

    @staticmethod
    def _request_consent(request: Request, form: FormData) -> Consent:
        """The consent record of a sign-up: the text and version its form showed."""
        return consent_of(
            request,
            text=field(form, "consent_text", MAX_CONSENT_TEXT) or None,
            version=field(form, "consent_version")[:64] or None,
            detail={
                "step": "request",
                "form": field(form, "form") or None,
                "page": request.headers.get("referer") or request.headers.get("origin"),
            },
        )

    async def _send_confirmation(
        self, pending: PendingResult, list_name: str, consent: Consent
    ) -> None:
        """Send the confirm message after the answer went out, if the address may get one.

        Whether it may (not mailed within ``serve.confirmation_mail_every_minutes``, not
        bounced, complained or erased) is decided here, so the answer never tells.
        """
        decision = await self.context.write(
            claim_confirmation_mail,
            self.context.store,
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
        """Send message ``kind`` (CONFIRM or WELCOME) to a subscriber; failures are logged."""
        try:
            subscriber = self.context.store.get(subscriber_id)
            if subscriber is None:
                return
            extra: dict[str, Any] = {}
            if kind == CONFIRM:
                token = self.tokens.make(subscriber_id, list_id, email=subscriber.email)
                extra = {
                    "confirm_url": confirm_url(self.context.ws.base_url, token),
                    "expiry_hours": f"{self.context.ws.config.serve.pending_expiry_hours:g}",
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

    def _confirm_target(self, token: str) -> Member | str | None:
        """The member a confirm token names; None if invalid; EXPIRED if too old.

        Reads the database: call it from a worker thread.
        """
        try:
            claim = self.tokens.read(token, max_age_seconds=self.pending_max_age)
        except ExpiredTokenError:
            return EXPIRED
        except TokenError:
            return None
        owned_by = functools.partial(self.tokens.owned_by, claim)
        return self.context.member(claim.subscriber_id, claim.list_id, owned_by)

    async def _confirm_member(self, request: Request) -> Member | Response:
        """The member a confirm link names, or the refusal page to answer with instead."""
        context = self.context
        client = client_address(request)
        if context.invalid_tokens.blocked(client):
            return context.too_many(client)
        target = await context.read(self._confirm_target, request.path_params["token"])
        if target == EXPIRED:
            return context.page(p.LINK_EXPIRED, 410)
        if not isinstance(target, Member) or target.membership.status == UNSUBSCRIBED:
            return context.invalid(client)
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
            return self.context.page(p.SUBSCRIBED, **answer)
        consent = self.context.pages.consent(target.membership.list_name)
        return self.context.page(
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
        context = self.context
        list_name = member.membership.list_name
        form = await read_form(request)
        if holds_nul(form):
            return context.unstorable_form()
        consent = self._confirm_consent(request, form, list_name)
        changed = await context.write(
            context.store.confirm, member.subscriber.id, list_name, consent=consent
        )
        task = None
        if changed:
            log.info("subscriber %d confirmed %s", member.subscriber.id, list_name)
            task = BackgroundTask(
                self._mail, WELCOME, member.subscriber.id, member.membership.list_id, list_name
            )
        elif not await self._still_active(member):
            return context.page(p.LINK_EXPIRED, 410)
        answer: dict[str, Any] = {"email": member.subscriber.email, "list_name": list_name}
        return context.page(p.SUBSCRIBED, background=task, **answer)

    def _confirm_consent(self, request: Request, form: FormData, list_name: str) -> Consent:
        """The consent record of a confirmation: the statement served now, and its version."""
        consent_text = self.context.pages.consent(list_name)
        detail: dict[str, Any] = {"step": "confirm"}
        shown = field(form, "consent_version")
        if shown and shown != consent_text.version:
            detail["shown_version"] = shown[:64]
        return consent_of(
            request, text=consent_text.text, version=consent_text.version, detail=detail
        )

    async def _still_active(self, member: Member) -> bool:
        """After a confirm that changed nothing: True for a second click on an active
        membership, False when the request expired or was withdrawn meanwhile."""
        now = await self.context.read(
            self.context.member, member.subscriber.id, member.membership.list_id
        )
        return now is not None and (
            now.membership.status == ACTIVE and now.subscriber.status == ACTIVE
        )
