"""``/u/{token}``: the unsubscribe link of every message.

``GET``/``HEAD`` show a confirmation page with one button and change nothing (mail
scanners and link previews fetch every URL in a message); ``POST`` (the page's button,
or RFC 8058 one-click with ``List-Unsubscribe=One-Click``, urlencoded or multipart)
unsubscribes from the token's list, committed before the 200. A test copy's link
(``send --test`` signs it for subscriber 0 of list 0, nobody) gets a page saying so on
GET and POST alike, and changes nothing.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from newsletter.errors import TokenError
from newsletter.mail.tokens import UnsubscribeTokens
from newsletter.store.schema import ACTIVE, UNSUBSCRIBED
from newsletter.web import pages as p
from newsletter.web.context import Member, WebContext
from newsletter.web.forms import client_address, consent_of, field, read_form

log = logging.getLogger(__name__)

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
TEST_COPY = "test copy"

Target = tuple[Member, int | None]


class UnsubscribeLinks:
    """The endpoints of ``/u/{token}`` for the workspace of ``context``."""

    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.tokens = UnsubscribeTokens(context.ws.secret_keys())

    def _target(self, token: str) -> Target | str | None:
        """(member, campaign id) a token names; TEST_COPY for a test copy's; None if invalid.

        Reads the database: call it from a worker thread.
        """
        try:
            claim = self.tokens.read(token)
        except TokenError:
            return None
        if claim.is_test_copy:
            # signed by us, so telling it apart reveals nothing a forger could use
            return TEST_COPY
        owned_by = functools.partial(self.tokens.owned_by, claim)
        member = self.context.member(claim.subscriber_id, claim.list_id, owned_by)
        return None if member is None else (member, claim.campaign_id)

    async def _resolve(self, request: Request) -> Target | Response:
        """The target of the request's token, or the page to answer with instead."""
        context = self.context
        client = client_address(request)
        if context.invalid_tokens.blocked(client):
            return context.too_many(client)
        target = await context.read(self._target, request.path_params["token"])
        if target is None:
            return context.invalid(client)
        if isinstance(target, str):  # TEST_COPY: nothing to change, and not a bad link
            return context.page(p.TEST_COPY_LINK)
        return target

    async def page(self, request: Request) -> Response:
        """GET/HEAD: the confirmation page; never changes anything."""
        target = await self._resolve(request)
        if isinstance(target, Response):
            return target
        member, _ = target
        already_left = (
            member.membership.status == UNSUBSCRIBED or member.subscriber.status != ACTIVE
        )
        return self.context.page(
            p.CONFIRM_UNSUBSCRIBE,
            email=member.subscriber.email,
            list_name=member.membership.list_name,
            already_left=already_left,
        )

    async def post(self, request: Request) -> Response:
        """POST: unsubscribe from the token's list, committed before answering 200."""
        target = await self._resolve(request)
        if isinstance(target, Response):
            return target
        member, campaign_id = target
        form = await read_form(request)
        one_click = field(form, ONE_CLICK_FIELD) == ONE_CLICK_VALUE
        via = "page" if field(form, "via") == "page" else ("one-click" if one_click else "post")
        detail: dict[str, Any] = {"via": via}
        if campaign_id is not None:
            detail["campaign_id"] = campaign_id
        changed = await self.context.write(
            self.context.store.unsubscribe,
            member.subscriber.id,
            consent=consent_of(request, detail=detail),
            list_name=member.membership.list_name,
        )
        if changed:
            log.info(
                "unsubscribed subscriber %d from %s (%s)",
                member.subscriber.id,
                member.membership.list_name,
                via,
            )
        return self.context.page(
            p.UNSUBSCRIBED,
            email=member.subscriber.email,
            list_name=member.membership.list_name,
        )
