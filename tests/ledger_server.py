"""The SMTP server and workspace helpers of the delivery tests.

The server (``LedgerServer``) stores what it accepts and can be told to answer a
recipient with a 4xx/5xx, to answer 421 or drop the connection for the next messages
(before or after taking the data), to refuse the sender, and to run a hook after each
message it stored; ``GreetingSMTP`` can refuse sessions at the greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP
from sqlalchemy import select

from newsletter.deliver import (
    SendTuning,
)
from newsletter.store import Consent, ImportRow, open_store_for
from newsletter.store.campaigns import campaigns
from newsletter.store.deliveries import deliveries
from newsletter.workspace import Workspace
from smtp_servers import CountingController

SAMPLE = {
    "ada.lovelace@example.com": "Ada Lovelace",
    "grace.hopper@example.net": "Grace Hopper",
    "linus.t@example.org": "Linus T.",
    "ines.gomez@example.com": "Inés Gómez",
    "kofi.mensah@example.net": "Kofi Mensah",
}
DROP_BEFORE, DROP_AFTER = "DROP-BEFORE", "DROP-AFTER"  # scripted actions, not replies
FAST = SendTuning(reconnect_backoff=0.001, reconnect_backoff_cap=0.005)


# --- the server -------------------------------------------------------------------------------


class LedgerHandler:
    """Stores accepted messages; answers as the test scripts it."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, bytes]] = []  # (mail from, rcpt, data)
        self.rcpt_replies: dict[str, str] = {}
        self.mail_reply: str | None = None
        self.rcpt_script: deque[str] = deque()  # one action per RCPT, then normal
        self.data_script: deque[str] = deque()  # one reply or action per message
        self.after_store: Callable[[int, str], None] | None = None
        self.before_refusal: Callable[[str], None] | None = None  # runs before a 4xx
        # awaited before the reply to a stored message: (the session, count so far)
        self.before_reply: Callable[[SMTP, int], Awaitable[None]] | None = None
        self.lock = threading.Lock()

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            action = self.rcpt_script.popleft() if self.rcpt_script else None
        if action == DROP_BEFORE:  # the connection dies before any data was sent
            transport = server.transport
            assert transport is not None
            transport.close()
            return "250 never seen"
        reply = self.rcpt_replies.get(address, "250 OK")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        with self.lock:
            action = self.data_script.popleft() if self.data_script else "250 OK"
        transport = server.transport
        assert transport is not None
        if action.startswith("4"):  # refused: nothing stored
            if self.before_refusal is not None:
                self.before_refusal(envelope.rcpt_tos[0])
            if action.startswith("421"):
                asyncio.get_running_loop().call_soon(transport.close)
            return action
        rcpt = envelope.rcpt_tos[0]
        with self.lock:
            self.received.append((envelope.mail_from, rcpt, envelope.original_content))
            count = len(self.received)
        if self.after_store is not None:
            self.after_store(count, rcpt)
        if self.before_reply is not None:
            await self.before_reply(server, count)
        if action == DROP_AFTER:  # taken, but the reply never leaves
            transport.close()
            return "250 never seen"
        return action

    def per_address(self) -> Counter[str]:
        with self.lock:
            return Counter(rcpt for _, rcpt, _ in self.received)


class LedgerServer(CountingController):
    """aiosmtpd on a free loopback port, counting connections."""

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def handler_of(server: LedgerServer) -> LedgerHandler:
    handler = server.handler
    assert isinstance(handler, LedgerHandler)
    return handler


# --- the workspace ----------------------------------------------------------------------------


def with_send(ws: Workspace, **send: Any) -> Workspace:
    """``ws`` with [send] settings replaced."""
    config = ws.config.model_copy(update={"send": ws.config.send.model_copy(update=send)})
    return Workspace(ws.root, config, ws.env)


def with_config(ws: Workspace, section: str, **values: Any) -> Workspace:
    part = getattr(ws.config, section).model_copy(update=values)
    return Workspace(ws.root, ws.config.model_copy(update={section: part}), ws.env)


def write_issue(root: Path, name: str = "2026-11-27-harbour", intro: str = "") -> Path:
    folder = root / "issues" / name
    folder.mkdir(parents=True)
    issue = {
        "subject": "Harbour notes for %%first_name%%",
        "date": "2026-11-27",
        "preheader": "Tides, ferries and a new lighthouse keeper",
        "intro": intro or "Three stories from the waterfront this week.",
        "teasers": [
            {
                "title": f"Story {n}: the ferry timetable changes",
                "summary": "The winter timetable starts on Monday with two fewer crossings "
                "a day and a later first boat from the north pier.",
                "url": f"https://news.example.org/story-{n}",
            }
            for n in range(1, 4)
        ],
    }
    (folder / "issue.json").write_text(json.dumps(issue), encoding="utf-8")
    return folder


def add_members(ws: Workspace, count: int) -> list[str]:
    addresses = [f"reader{n:03d}@example.org" for n in range(count)]
    rows = [ImportRow(email=a, line=n, name=f"Reader {n}") for n, a in enumerate(addresses)]
    with open_store_for(ws) as store:
        store.import_batch(rows, list_name="main", consent=Consent(source="import"))
    return addresses


def ledger(ws: Workspace) -> dict[str, tuple[str, int, int | None]]:
    """address -> (status, attempts, code) of every delivery row."""
    with open_store_for(ws) as store, store.read() as conn:
        rows = conn.execute(
            select(
                deliveries.c.email, deliveries.c.status, deliveries.c.attempts, deliveries.c.code
            )
        )
        return {row.email: (row.status, row.attempts, row.code) for row in rows}


def campaign_state(ws: Workspace) -> str:
    with open_store_for(ws) as store, store.read() as conn:
        return str(conn.scalar(select(campaigns.c.state)))


def parsed(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def bodies(message: email.message.EmailMessage) -> tuple[str, str]:
    text, html = (str(part.get_content()) for part in message.iter_parts())
    return text, html


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@contextlib.contextmanager
def tls_server(tmp_path: Path, *, login_ok: bool) -> Iterator[tuple[LedgerServer, str]]:
    """A LedgerServer with STARTTLS (a throwaway CA) and AUTH that accepts every login
    (``login_ok``) or none -> (server, URL base ``smtp://news:PASSWORD@...`` to format)."""
    import ssl

    import trustme
    from aiosmtpd.smtp import AuthResult

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))

    def authenticator(*args: Any) -> AuthResult:
        return AuthResult(success=login_ok, handled=False)

    controller = LedgerServer(
        LedgerHandler(), tls_context=context, authenticator=authenticator, auth_require_tls=True
    )
    controller.start()
    try:
        yield controller, f"smtp://news:{{password}}@127.0.0.1:{controller.port}?cafile={cafile}"
    finally:
        controller.stop()


# --- a server that refuses sessions at the greeting ------------------------------------------


class GreetingSMTP(SMTP):
    """aiosmtpd that can answer the greeting with a 421: past ``limit`` sessions open at
    once ("too many connections from your address"), past ``allowed`` sessions in all, or
    while ``busy`` is set.

    A session over ``limit`` is refused only once ``limit`` sessions have begun a mail
    transaction, so the client always sees the others open when the refusal arrives.
    """

    limit = 1000
    allowed = 1000
    busy = False
    active = 0
    greeted = 0
    most = 0
    refused = 0
    transacting: set[SMTP]
    all_transacting: asyncio.Event  # set once ``limit`` sessions have sent MAIL

    async def _handle_client(self) -> None:  # aiosmtpd's greeting; no public hook for it
        cls = type(self)
        over_limit = cls.active >= cls.limit
        if cls.busy or over_limit or cls.greeted >= cls.allowed:
            if over_limit:
                await asyncio.wait_for(cls.all_transacting.wait(), 30)
            cls.refused += 1
            await self.push("421 4.7.0 not now, try again later")
            assert self.transport is not None
            self.transport.close()
            return
        cls.greeted += 1
        cls.active += 1
        cls.most = max(cls.most, cls.active)
        try:
            await super()._handle_client()
        finally:
            cls.active -= 1

    async def smtp_MAIL(self, arg: str) -> None:
        cls = type(self)
        cls.transacting.add(self)
        if len(cls.transacting) >= cls.limit:
            cls.all_transacting.set()
        await super().smtp_MAIL(arg)
