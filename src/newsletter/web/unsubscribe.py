"""``/u/{token}``: the unsubscribe link of every message.

``GET``/``HEAD`` show a confirmation page with one button and change nothing (mail
scanners and link previews fetch every URL in a message); ``POST`` (the page's button,
or RFC 8058 one-click with ``List-Unsubscribe=One-Click``, urlencoded or multipart)
unsubscribes from the token's list, committed before the 200; when a message to them
is in flight at that moment (a sender had claimed it just before), the 200 waits until
the mail server has answered for it, so nothing reaches the server after the answer.
A test copy's link
(``send --test`` signs it for subscriber 0 of list 0, nobody) gets a page saying so on
GET and POST alike, and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from newsletter.errors import TokenError
from newsletter.mail.tokens import UnsubscribeClaim, UnsubscribeTokens
from newsletter.store import Consent, utcnow
from newsletter.store.campaigns import skip_waiting
from newsletter.store.deliveries import still_in_flight
from newsletter.store.leaving import ListMember
from newsletter.web import pages as p
from newsletter.web.batch import Batcher
from newsletter.web.context import READ_THREADS, WebContext
from newsletter.web.forms import client_address, consent_of, field, read_form

log = logging.getLogger(__name__)

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"

# How long a POST waits for a message in flight to its sender (an SMTP transaction
# takes milliseconds; a sender killed meanwhile leaves its row until recovered, and a
# recovered row is checked again before it is sent), and how often it looks.
IN_FLIGHT_WAIT_SECONDS = 10.0
IN_FLIGHT_POLL_SECONDS = 0.02

Wish = tuple[UnsubscribeClaim, Consent]
# the member, whether this request changed them, whether a message to them was in flight
Left = tuple[ListMember, bool, bool]


class UnsubscribeLinks:
    """The endpoints of ``/u/{token}`` for the workspace of ``context``.

    Lookups (GET) and unsubscribes (POST) arriving together share one worker-thread hop
    and one query (``web.batch``); the unsubscribes also share one write transaction,
    committed before any of them is answered.
    """

    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.tokens = UnsubscribeTokens(context.ws.secret_keys())
        self._lookups = Batcher(self._look_up, parallel=READ_THREADS, name="unsubscribe-read")
        self._leaves = Batcher(self._leave, name="unsubscribe-write")
        self._flights = Batcher(self._in_flight, parallel=READ_THREADS, name="unsubscribe-wait")

    def close(self) -> None:
        """Let the worker threads go once their batches have ended (the app shuts down)."""
        self._lookups.close()
        self._leaves.close()
        self._flights.close()

    def _member(
        self, claim: UnsubscribeClaim, found: dict[tuple[int, int], ListMember]
    ) -> ListMember | None:
        """The member ``claim`` names among ``found``, if the token was made for them."""
        member = found.get((claim.subscriber_id, claim.list_id))
        # the id alone is not enough: the token must have been made for this person
        if member is None or not self.tokens.owned_by(claim, member.email):
            return None
        return member

    def _look_up(self, claims: list[UnsubscribeClaim]) -> list[ListMember | None]:
        """Per claim its member, or None (a worker thread, one query for all)."""
        store = self.context.store
        with store.read() as conn:
            found = store.list_members(conn, [claim.subscriber_id for claim in claims])
        return [self._member(claim, found) for claim in claims]

    def _leave(self, wishes: list[Wish]) -> list[Left | None]:
        """Per wish (member, changed?), or None for a bad token: one transaction for all,
        three statements (read with a lock, update, consents)."""
        store = self.context.store
        with store.write() as conn:
            ids = [claim.subscriber_id for claim, _ in wishes]
            found = store.list_members(conn, ids, lock=True)
            members = [self._member(claim, found) for claim, _ in wishes]
            leaving = [
                (member, consent)
                for member, (_, consent) in zip(members, wishes, strict=True)
                if member is not None
            ]
            changed = store.leave(conn, leaving)
            gone = [(member.subscriber_id, member.list_id) for member, _ in leaving]
            sending = skip_waiting(conn, gone, utcnow())
        _log_left([wish for wish, did in zip(leaving, changed, strict=True) if did])
        done = iter(changed)
        return [
            None if member is None else (member, next(done), member.subscriber_id in sending)
            for member in members
        ]

    def _in_flight(self, subscriber_ids: list[int]) -> list[bool]:
        """Per subscriber whether a message to them is still in flight (one query)."""
        with self.context.store.read() as conn:
            sending = still_in_flight(conn, subscriber_ids)
        return [subscriber in sending for subscriber in subscriber_ids]

    async def _until_answered(self, subscriber_id: int) -> None:
        """Wait until the message in flight to ``subscriber_id`` has its server's answer."""
        log.debug("subscriber %d left with a message in flight: waiting for it", subscriber_id)
        deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        while await self._flights.submit(subscriber_id):
            if time.monotonic() >= deadline:
                log.warning(
                    "a message to subscriber %d is still in flight after %g s; answering",
                    subscriber_id,
                    IN_FLIGHT_WAIT_SECONDS,
                )
                return
            await asyncio.sleep(IN_FLIGHT_POLL_SECONDS)

    def _claim(self, request: Request) -> UnsubscribeClaim | Response:
        """The claim of the request's token, or the page to answer with instead.

        Checking the signature needs no database, so a forged token costs no thread hop.
        """
        context = self.context
        client = client_address(request)
        if context.invalid_tokens.blocked(client):
            return context.too_many(client)
        try:
            claim = self.tokens.read(request.path_params["token"])
        except TokenError:
            return context.invalid(client)
        if claim.is_test_copy:
            # signed by us, so telling it apart reveals nothing a forger could use
            return context.page(p.TEST_COPY_LINK)
        return claim

    async def page(self, request: Request) -> Response:
        """GET/HEAD: the confirmation page; never changes anything."""
        claim = self._claim(request)
        if isinstance(claim, Response):
            return claim
        member = await self._lookups.submit(claim)
        if member is None:
            return self.context.invalid(client_address(request))
        return self.context.page(
            p.CONFIRM_UNSUBSCRIBE,
            email=member.email,
            list_name=member.list_name,
            already_left=member.has_left,
        )

    async def post(self, request: Request) -> Response:
        """POST: unsubscribe from the token's list, committed before answering 200."""
        claim = self._claim(request)
        if isinstance(claim, Response):
            return claim
        form = await read_form(request)
        one_click = field(form, ONE_CLICK_FIELD) == ONE_CLICK_VALUE
        via = "page" if field(form, "via") == "page" else ("one-click" if one_click else "post")
        detail: dict[str, Any] = {"via": via}
        if claim.campaign_id is not None:
            detail["campaign_id"] = claim.campaign_id
        left = await self._leaves.submit((claim, consent_of(request, detail=detail)))
        if left is None:
            return self.context.invalid(client_address(request))
        member, _, in_flight = left
        if in_flight:
            await self._until_answered(member.subscriber_id)
        return self.context.page(p.UNSUBSCRIBED, email=member.email, list_name=member.list_name)


def _log_left(left: list[tuple[ListMember, Consent]]) -> None:
    """One line per list and way of asking for the unsubscribes a batch committed:
    ``unsubscribed from main (one-click): subscribers 12, 31``."""
    if not left or not log.isEnabledFor(logging.INFO):
        return
    by_kind: dict[tuple[str, str], list[int]] = {}
    for member, consent in left:
        via = str((consent.detail or {}).get("via", "post"))
        by_kind.setdefault((member.list_name, via), []).append(member.subscriber_id)
    for (list_name, via), ids in by_kind.items():
        who = "subscriber" if len(ids) == 1 else "subscribers"
        shown = ", ".join(str(i) for i in ids)
        log.info("unsubscribed from %s (%s): %s %s", list_name, via, who, shown)
