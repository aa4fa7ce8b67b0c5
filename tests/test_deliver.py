"""The delivery ledger against a real aiosmtpd server on loopback and a real SQLite file.

The server (``LedgerServer``) stores what it accepts and can be told to answer a
recipient with a 4xx/5xx, to answer 421 or drop the connection for the next messages
(before or after taking the data), to refuse the sender, and to run a hook after each
message it stored. Time for deferrals comes from an injected clock; nothing sleeps.

Sender rules covered: 12 (send side), 16, 17, 19, 20, 21, 22, 26, 28.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import logging
import math
import os
import signal
import socket
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from sqlalchemy import select, update

from newsletter.deliver import (
    AlreadySentError,
    SendTuning,
    dry_run,
    latest_issue,
    plan_send,
    retry_due_deferrals,
    send_issue,
    send_test,
)
from newsletter.errors import ConfigError, DeliveryError, NewsletterError, RenderError
from newsletter.mail.headers import ONE_CLICK
from newsletter.mail.tokens import UnsubscribeTokens
from newsletter.store import Consent, ImportRow, open_store_for
from newsletter.store.campaigns import campaigns
from newsletter.store.deliveries import deliveries
from newsletter.store.lease import holder_name
from newsletter.store.ledger import LedgerSession
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


@pytest.fixture
def server() -> Iterator[LedgerServer]:
    controller = LedgerServer(LedgerHandler())
    controller.start()
    yield controller
    controller.stop()


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


@pytest.fixture
def issue(ws: Workspace) -> Path:
    return write_issue(ws.root)


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


# --- a whole send -----------------------------------------------------------------------------


def test_full_send_reaches_each_subscriber_once_personalised(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    report = send_issue(ws, issue, smtp_url=server.url, tuning=FAST)

    handler = handler_of(server)
    assert handler.per_address() == Counter(dict.fromkeys(SAMPLE, 1))
    assert (report.sent, report.failed, report.deferred, report.skipped) == (5, 0, 0, 0)
    assert report.state == "finished" and report.campaign_id is not None
    tokens = UnsubscribeTokens(ws.secret_keys())
    with open_store_for(ws) as store:
        list_id = store.list_id("main")
        ids = {address: store.get_by_email(address).id for address in SAMPLE}  # type: ignore[union-attr]
    message_ids = set()
    for mail_from, rcpt, data in handler.received:
        message = parsed(data)
        text, _ = bodies(message)
        assert SAMPLE[rcpt] in text and SAMPLE[rcpt] in message["To"]
        assert message["Subject"] == f"Harbour notes for {SAMPLE[rcpt].split()[0]}"
        # rule 1/2: one https List-Unsubscribe, the one-click header byte-exact
        assert len(message.get_all("List-Unsubscribe") or []) == 1
        assert data.count(f"List-Unsubscribe-Post: {ONE_CLICK}\r\n".encode()) == 1
        url = message["List-Unsubscribe"].split(",")[0].strip("<> ")
        assert url.startswith(ws.base_url + "/u/")
        claim = tokens.read(url.rsplit("/", 1)[1])
        assert (claim.subscriber_id, claim.list_id, claim.campaign_id) == (
            ids[rcpt],
            list_id,
            report.campaign_id,
        )
        assert url in text  # the same link in the body (rule 16)
        assert ws.config.publication.postal_address in text  # rule 17: the footer shows it
        assert mail_from.startswith("bounces+") and "@example.org" in mail_from
        message_ids.add(message["Message-ID"])
    assert len(message_ids) == 5
    assert set(ledger(ws).values()) == {("sent", 1, 250)}


def test_rule27_the_data_subject_export_lists_the_messages_sent(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    with open_store_for(ws) as store:
        data = store.describe("ada.lovelace@example.com")
    assert data is not None
    [sent] = data["deliveries"]
    assert sent["issue"] == issue.name and sent["status"] == "sent"
    assert sent["address"] == "ada.lovelace@example.com" and sent["reply"].startswith("250")
    json.dumps(data)  # JSON-ready


def test_rule28_a_finished_send_never_goes_out_again(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    with pytest.raises(AlreadySentError, match="already sent to list 'main'") as info:
        send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert "compose a new issue" in str(info.value)
    # the same folder named another way is the same campaign
    with pytest.raises(AlreadySentError):
        send_issue(ws, issue.resolve(), smtp_url=server.url, tuning=FAST)
    assert sum(handler_of(server).per_address().values()) == 5
    assert plan_send(ws, issue).state == "finished"


def test_embedded_server_when_no_smtp_url(ws: Workspace, issue: Path) -> None:
    assert plan_send(ws, issue).target.startswith("the embedded local SMTP server")
    report = send_issue(ws, issue, tuning=FAST)
    assert report.outbox == ws.root / "outbox"
    stored = sorted(report.outbox.glob("*.eml"))
    assert len(stored) == 5
    assert {parsed(path.read_bytes())["To"].addresses[0].addr_spec for path in stored} == set(
        SAMPLE
    )


# --- resuming -------------------------------------------------------------------------------


def test_stop_mid_send_then_rerun_delivers_the_rest_once(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    add_members(ws, 15)
    stop = threading.Event()

    def progress(p: Any) -> None:
        if p.sent >= 4:
            stop.set()

    first = send_issue(
        ws, issue, smtp_url=server.url, connections=2, progress=progress, stop=stop, tuning=FAST
    )
    assert first.interrupted and first.state == "stopped"
    assert 4 <= first.sent < 20
    statuses = Counter(status for status, _, _ in ledger(ws).values())
    assert statuses["sending"] == 0 and statuses["sent"] == first.sent
    assert plan_send(ws, issue).state == "resume"

    second = send_issue(ws, issue, smtp_url=server.url, connections=2, tuning=FAST)
    assert second.resumed and second.sent == 20 - first.sent and second.state == "finished"
    counts = handler_of(server).per_address()
    assert len(counts) == 20 and set(counts.values()) == {1}


def test_sigterm_stops_like_ctrl_c_and_a_cut_short_step_releases_its_lock(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """A service manager's SIGTERM finishes the messages in flight (it used to kill the
    run like a crash); a step interrupted inside its transaction is rolled back on close,
    so the run's own cleanup is not locked out of the database."""
    add_members(ws, 15)

    def terminate_after_four(count: int, rcpt: str) -> None:
        if count == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    handler_of(server).after_store = terminate_after_four
    previous = signal.getsignal(signal.SIGTERM)
    first = send_issue(
        ws, issue, smtp_url=server.url, connections=2, handle_sigint=True, tuning=FAST
    )
    assert signal.getsignal(signal.SIGTERM) is previous  # handler restored
    assert first.interrupted and first.state == "stopped" and 4 <= first.sent < 20
    assert Counter(status for status, _, _ in ledger(ws).values())["sending"] == 0

    with open_store_for(ws) as store:
        session = LedgerSession(store, first.campaign_id or 0, store.list_id("main") or 0)
        raw = session._conn.connection.dbapi_connection  # the step's own connection
        assert raw is not None
        raw.execute("BEGIN IMMEDIATE")  # as if Ctrl-C landed between BEGIN and COMMIT
        session.close()
        with store.write() as conn:  # would wait for the busy timeout, then fail
            conn.execute(update(campaigns).values(runner=None))
    second = send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert second.sent == 20 - first.sent
    assert set(handler_of(server).per_address().values()) == {1}


def test_crash_leftovers_are_resent_and_nothing_else(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """What a kill -9 leaves (rows in ``sending``, a dead runner) is resumed: the rows in
    flight are sent again, rows recorded as sent never are."""
    add_members(ws, 10)
    stop = threading.Event()
    first = send_issue(
        ws,
        issue,
        smtp_url=server.url,
        connections=1,
        progress=lambda p: stop.set() if p.sent >= 6 else None,
        stop=stop,
        tuning=FAST,
    )
    in_flight = 3  # as if 3 connections had been mid-message at the kill
    with open_store_for(ws) as store, store.write() as conn:
        crashed = list(
            conn.scalars(
                select(deliveries.c.id).where(deliveries.c.status == "sent").limit(in_flight)
            )
        )
        conn.execute(
            update(deliveries).where(deliveries.c.id.in_(crashed)).values(status="sending")
        )
        dead = f"{socket.gethostname()}:{2**22 + 12345}"  # no such process
        conn.execute(
            update(campaigns).values(state="running", runner=dead, heartbeat_at=datetime.now(UTC))
        )

    second = send_issue(ws, issue, smtp_url=server.url, connections=3, tuning=FAST)
    assert second.recovered == in_flight
    assert second.sent == 15 - first.sent + in_flight and second.state == "finished"
    counts = handler_of(server).per_address()
    assert len(counts) == 15  # nobody missed
    assert sum(n - 1 for n in counts.values()) == in_flight  # duplicates: only those in flight


def test_a_live_run_is_not_taken_over(ws: Workspace, issue: Path, server: LedgerServer) -> None:
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    with open_store_for(ws) as store, store.write() as conn:
        conn.execute(
            update(campaigns).values(
                state="running",
                runner=f"{socket.gethostname()}:{os.getppid()}",  # alive: our parent
                heartbeat_at=datetime.now(UTC),
            )
        )
    with pytest.raises(NewsletterError, match=r"being sent .* by another process"):
        send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert holder_name().split(":")[1] == str(os.getpid())


# --- outcomes -------------------------------------------------------------------------------


def test_rule19_5xx_fails_that_recipient_only_and_hard_bounces_suppress(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    handler = handler_of(server)
    handler.rcpt_replies["grace.hopper@example.net"] = "550 5.1.1 no such user here"
    handler.rcpt_replies["linus.t@example.org"] = "554 5.7.1 message refused by policy"
    report = send_issue(ws, issue, smtp_url=server.url, tuning=FAST)

    assert (report.sent, report.failed) == (3, 2)
    assert set(handler.per_address()) == set(SAMPLE) - {
        "grace.hopper@example.net",
        "linus.t@example.org",
    }
    rows = ledger(ws)
    assert rows["grace.hopper@example.net"] == ("failed", 1, 550)
    assert rows["linus.t@example.org"] == ("failed", 1, 554)
    assert dict(report.failures)["grace.hopper@example.net"].startswith("550 5.1.1")
    with open_store_for(ws) as store:
        assert store.get_by_email("grace.hopper@example.net").status == "bounced"  # type: ignore[union-attr]
        assert store.is_suppressed("grace.hopper@example.net")
        # a policy block is the sender's problem, not a dead mailbox
        assert store.get_by_email("linus.t@example.org").status == "active"  # type: ignore[union-attr]
    assert report.state == "finished"


def test_retry_failed_requeues_only_failed_rows(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    handler = handler_of(server)
    handler.rcpt_replies["linus.t@example.org"] = "554 5.7.1 message refused by policy"
    handler.rcpt_replies["grace.hopper@example.net"] = "550 5.1.1 no such user here"
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    handler.rcpt_replies.clear()
    with pytest.raises(AlreadySentError, match="2 failed") as info:
        send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert "--retry-failed" in str(info.value)
    assert plan_send(ws, issue, retry_failed=True).recipients == 2

    again = send_issue(ws, issue, smtp_url=server.url, retry_failed=True, tuning=FAST)
    # the policy-blocked one is delivered now; the bounced one stays suppressed
    assert (again.sent, again.skipped, again.requeued) == (1, 1, 2)
    counts = handler.per_address()
    assert counts["linus.t@example.org"] == 1 and "grace.hopper@example.net" not in counts
    assert set(counts.values()) == {1}


def test_rule20_4xx_defers_with_backoff_then_gives_up(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    ws = with_send(ws, retry_floor_seconds=60, retry_cap_seconds=100, retry_lifetime_hours=1)
    handler = handler_of(server)
    busy = "kofi.mensah@example.net"
    handler.rcpt_replies[busy] = "451 4.2.1 mailbox busy, try later"
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    clock = FakeClock(t0)
    tuning = SendTuning(reconnect_backoff=0.001, clock=clock)

    def next_attempt() -> datetime:
        with open_store_for(ws) as store, store.read() as conn:
            value = conn.scalar(
                select(deliveries.c.next_attempt_at).where(deliveries.c.email == busy)
            )
        assert value is not None
        return value

    first = send_issue(ws, issue, smtp_url=server.url, tuning=tuning)
    assert (first.sent, first.deferred, first.state) == (4, 1, "waiting")
    assert ledger(ws)[busy] == ("deferred", 1, 451)
    assert next_attempt() == t0 + timedelta(seconds=60)  # the floor
    assert first.next_attempt_at == t0 + timedelta(seconds=60)

    clock.now = t0 + timedelta(seconds=30)  # not due yet: nothing to do
    assert plan_send(ws, issue, now=clock.now).state == "waiting"
    assert send_issue(ws, issue, smtp_url=server.url, tuning=tuning).deferred == 0

    clock.now = t0 + timedelta(seconds=61)
    second = retry_due_deferrals(ws, smtp_url=server.url, tuning=tuning)
    assert [r.deferred for r in second] == [1]
    assert ledger(ws)[busy] == ("deferred", 2, 451)
    assert next_attempt() == clock.now + timedelta(seconds=100)  # 120, capped at 100

    clock.now = t0 + timedelta(hours=1, seconds=1)  # past the lifetime
    last = send_issue(ws, issue, smtp_url=server.url, tuning=tuning)
    assert last.state == "finished"
    assert ledger(ws)[busy][0] == "failed"
    assert busy not in handler.per_address()
    assert retry_due_deferrals(ws, smtp_url=server.url, tuning=tuning) == []


def test_rule21_421_for_a_while_fails_nobody_and_doubles_nobody(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    handler = handler_of(server)
    handler.data_script.extend(["421 4.3.2 too busy, come back later"] * 5)
    report = send_issue(ws, issue, smtp_url=server.url, connections=2, tuning=FAST)
    assert (report.sent, report.failed, report.deferred) == (5, 0, 0)
    assert handler.per_address() == Counter(dict.fromkeys(SAMPLE, 1))
    assert server.connections > 2  # it reconnected


def test_rule21_a_drop_before_the_data_is_retried_once_delivered(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    handler = handler_of(server)
    handler.rcpt_script.extend([DROP_BEFORE, "", DROP_BEFORE])
    report = send_issue(ws, issue, smtp_url=server.url, connections=1, tuning=FAST)
    assert (report.sent, report.unknown, report.failed) == (5, 0, 0)
    assert handler.per_address() == Counter(dict.fromkeys(SAMPLE, 1))


def test_a_drop_after_the_data_is_unknown_and_never_resent(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    handler = handler_of(server)
    handler.data_script.append(DROP_AFTER)
    report = send_issue(ws, issue, smtp_url=server.url, connections=1, tuning=FAST)
    assert (report.sent, report.unknown, report.failed) == (4, 1, 0)
    assert report.state == "finished"
    statuses = Counter(status for status, _, _ in ledger(ws).values())
    assert statuses == Counter({"sent": 4, "unknown": 1})
    with pytest.raises(AlreadySentError):
        send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    # "maybe delivered" is not "failed": --retry-failed leaves it alone too
    again = send_issue(ws, issue, smtp_url=server.url, retry_failed=True, tuning=FAST)
    assert (again.sent, again.requeued) == (0, 0)
    assert handler.per_address() == Counter(dict.fromkeys(SAMPLE, 1))
    # the user is told, and may resend it on purpose: the same Message-ID goes again
    with pytest.raises(AlreadySentError, match="1 unknown") as info:
        send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert "--retry-unknown" in (info.value.hint or "")
    assert plan_send(ws, issue, retry_unknown=True).recipients == 1
    third = send_issue(ws, issue, smtp_url=server.url, retry_unknown=True, tuning=FAST)
    assert (third.sent, third.requeued, third.campaign_unknown) == (1, 1, 0)
    assert sorted(handler.per_address().values()) == [1, 1, 1, 1, 2]
    ids = [
        email.message_from_bytes(data)["Message-ID"]
        for _, rcpt, data in handler.received
        if handler.per_address()[rcpt] == 2
    ]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_retries_of_an_issue_never_sent_and_an_empty_list_name_are_refused(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    for failed, unknown in ((True, False), (False, True)):
        with pytest.raises(NewsletterError, match="never sent to list 'main'"):
            plan_send(ws, issue, retry_failed=failed, retry_unknown=unknown)
        with pytest.raises(NewsletterError, match="never sent to list 'main'"):
            send_issue(
                ws,
                issue,
                smtp_url=server.url,
                tuning=FAST,
                retry_failed=failed,
                retry_unknown=unknown,
            )
    with pytest.raises(NewsletterError, match="list name is empty"):
        send_issue(ws, issue, list_name=" ", smtp_url=server.url, tuning=FAST)
    with pytest.raises(NewsletterError, match=r"no list named 'weekly' \(lists: 'main'\)"):
        plan_send(ws, issue, "weekly")
    assert handler_of(server).received == []


def test_unreachable_server_stops_at_once_and_marks_nothing(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(DeliveryError, match=r"cannot connect to smtp://127\.0\.0\.1") as info:
        send_issue(ws, issue, smtp_url=f"smtp://127.0.0.1:{free_port}", tuning=FAST)
    assert "\n" not in str(info.value) and "resume" in str(info.value)
    assert {status for status, _, _ in ledger(ws).values()} == {"queued"}
    assert campaign_state(ws) == "stopped"
    # the server is back: the rerun sends everyone, once
    report = send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert report.sent == 5 and handler_of(server).per_address() == Counter(
        dict.fromkeys(SAMPLE, 1)
    )


def test_a_refused_sender_stops_the_run(ws: Workspace, issue: Path, server: LedgerServer) -> None:
    handler_of(server).mail_reply = "550 5.7.1 sender not allowed"
    with pytest.raises(DeliveryError, match="refused the sender"):
        send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert {status for status, _, _ in ledger(ws).values()} == {"queued"}
    assert handler_of(server).received == []


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


def test_wrong_password_stops_the_run(ws: Workspace, issue: Path, tmp_path: Path) -> None:
    with (
        tls_server(tmp_path, login_ok=False) as (controller, url),
        pytest.raises(DeliveryError, match="login rejected") as info,
    ):
        send_issue(ws, issue, smtp_url=url.format(password="wrong"), tuning=FAST)
    assert "wrong" not in str(info.value).replace("wrong password", "")
    assert {status for status, _, _ in ledger(ws).values()} == {"queued"}
    assert handler_of(controller).received == []


# --- connections, limits ----------------------------------------------------------------------


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


@pytest.fixture
def greeting_server() -> Iterator[LedgerServer]:
    class Greeting(GreetingSMTP):
        # its own counters and events for this test
        transacting: set[SMTP] = set()  # noqa: RUF012
        all_transacting = asyncio.Event()

    controller = LedgerServer(LedgerHandler())
    controller.smtp_class = Greeting
    controller.start()
    Greeting.greeted = 0  # forget the Controller's own start-up probe
    yield controller
    controller.stop()


def test_a_stop_while_a_session_hangs_opening_ends_the_run_at_once(
    ws: Workspace, issue: Path
) -> None:
    """A server that takes the connection and never greets: a stop (Ctrl-C, shutdown)
    hands the rows back and returns now, not after send.timeout_seconds."""
    stop = threading.Event()
    outcome: list[Any] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"smtp://127.0.0.1:{listener.getsockname()[1]}"

        def send() -> None:
            try:
                outcome.append(
                    send_issue(ws, issue, smtp_url=url, connections=1, stop=stop, tuning=FAST)
                )
            except BaseException as exc:
                outcome.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        accepted, _ = listener.accept()  # the sender now waits for a greeting (60 s)
        with accepted:
            stop.set()
            sender.join(timeout=15)
        assert not sender.is_alive(), "the run waited for the silent server"
    report = outcome[0]
    assert not isinstance(report, BaseException), report
    assert report.interrupted and report.sent == 0
    assert {status for status, _, _ in ledger(ws).values()} == {"queued"}


def test_a_cap_on_connections_per_client_only_narrows_the_run(
    ws: Workspace, issue: Path, greeting_server: LedgerServer
) -> None:
    add_members(ws, 15)  # 20 in all
    smtp_class: Any = greeting_server.smtp_class
    smtp_class.limit = 2
    report = send_issue(ws, issue, smtp_url=greeting_server.url, connections=4, tuning=FAST)
    assert (report.sent, report.deferred, report.state) == (20, 0, "finished")
    assert set(handler_of(greeting_server).per_address().values()) == {1}
    assert smtp_class.most == 2


def test_a_server_refusing_sessions_for_a_while_defers_rows_and_stops_nothing(
    ws: Workspace, issue: Path, greeting_server: LedgerServer
) -> None:
    add_members(ws, 5)  # 10 in all
    smtp_class: Any = greeting_server.smtp_class

    def restart_after_three(count: int, rcpt: str) -> None:
        if count == 3:
            smtp_class.busy = True  # every new session: 421 at the greeting

    handler_of(greeting_server).after_store = restart_after_three
    report = send_issue(
        with_send(ws, messages_per_connection=2),
        issue,
        smtp_url=greeting_server.url,
        connections=1,
        tuning=FAST,
    )
    # messages 3 and 4 share the session opened before the restart; then none opens
    assert (report.sent, report.deferred, report.failed) == (4, 6, 0)
    assert report.state == "waiting"
    assert {status for status, _, _ in ledger(ws).values()} == {"sent", "deferred"}
    # one row spends the retries; the other five are deferred with it, not tried in vain
    assert smtp_class.refused == FAST.reconnect_attempts + 1


def test_a_row_handed_back_by_a_narrowed_run_is_still_sent_or_deferred(
    ws: Workspace, issue: Path, greeting_server: LedgerServer
) -> None:
    """Two sessions of two messages each, then every session refused (421): the lane
    whose session is used up first is refused while the other lane's session is open, so
    the run narrows and hands that lane's row back; the other lane takes it, is refused
    too and defers it; none is left queued.

    Events fix the order: no reply goes out before both sessions are in a transaction,
    and the other session's last reply waits until the run has narrowed."""
    smtp_class: Any = greeting_server.smtp_class
    smtp_class.allowed = 2
    both_sending = asyncio.Event()
    narrowed = threading.Event()
    per_session: Counter[SMTP] = Counter()
    used_up: list[SMTP] = []

    async def in_order(session: SMTP, count: int) -> None:
        per_session[session] += 1
        if len(per_session) == 2:
            both_sending.set()
        await asyncio.wait_for(both_sending.wait(), 30)
        if per_session[session] == 2:
            if used_up:  # the other session is used up: its lane asks for a third one
                await asyncio.to_thread(narrowed.wait, 30)
            used_up.append(session)

    class NarrowedLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "one connection fewer" in record.getMessage():
                narrowed.set()

    handler_of(greeting_server).before_reply = in_order
    engine_log = logging.getLogger("newsletter.deliver.engine")
    watcher = NarrowedLog()
    engine_log.addHandler(watcher)
    try:
        report = send_issue(
            with_send(ws, messages_per_connection=2),
            issue,
            smtp_url=greeting_server.url,
            connections=2,
            tuning=FAST,
        )
    finally:
        engine_log.removeHandler(watcher)
    assert narrowed.is_set()
    statuses = Counter(status for status, _, _ in ledger(ws).values())
    assert statuses["queued"] == 0 and statuses["sending"] == 0
    assert (report.sent, report.deferred, report.state) == (4, 1, "waiting")
    assert smtp_class.greeted == 2


def test_many_tls_connections_in_one_loop_deliver_each_message_once(
    ws: Workspace, issue: Path, tmp_path: Path
) -> None:
    """STARTTLS and AUTH on every connection, sessions recycled every 4 messages: the
    loop drives non-blocking TLS sockets side by side (and reads what TLS buffered)."""
    members = add_members(ws, 35)  # 40 in all
    with tls_server(tmp_path, login_ok=True) as (controller, url):
        report = send_issue(
            with_send(ws, messages_per_connection=4),
            issue,
            smtp_url=url.format(password="secret"),
            connections=6,
            tuning=FAST,
        )
    assert report.sent == 40
    received = handler_of(controller).per_address()
    assert set(received) == set(SAMPLE) | set(members)
    assert set(received.values()) == {1}
    assert controller.connections >= math.ceil(40 / 4)
    assert {status for status, _, _ in ledger(ws).values()} == {"sent"}


def test_a_non_ascii_address_without_smtputf8_fails_alone_and_sends_nothing(
    ws: Workspace, issue: Path
) -> None:
    """The address is refused before anything is written: the connection stays in step,
    so every later message still reaches its own recipient."""
    add_members(ws, 3)
    later = [f"late{n}@example.org" for n in range(3)]
    with open_store_for(ws) as store:
        for address in ["josé@example.org", *later]:  # in this order: José mid-list
            store.import_batch(
                [ImportRow(email=address, line=1, name=address.split("@")[0])],
                list_name="main",
                consent=Consent(source="import"),
            )
    handler = LedgerHandler()
    controller = LedgerServer(handler, enable_SMTPUTF8=False)
    controller.start()
    try:
        report = send_issue(ws, issue, smtp_url=controller.url, connections=1, tuning=FAST)
    finally:
        controller.stop()
    assert (report.sent, report.failed) == (len(SAMPLE) + 6, 1)
    assert ledger(ws)["josé@example.org"][0] == "failed"
    for _, rcpt, data in handler.received:
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert message["To"].addresses[0].addr_spec == rcpt


@pytest.mark.parametrize("connections", [1, 3])
def test_rule22_per_connection_cap(
    ws: Workspace, issue: Path, server: LedgerServer, connections: int
) -> None:
    add_members(ws, 9)  # 14 in all
    ws = with_send(ws, messages_per_connection=3)
    report = send_issue(ws, issue, smtp_url=server.url, connections=connections, tuning=FAST)
    assert report.sent == 14
    # each worker's connection closes after 3 messages: ceil(14/3) sessions with one
    # connection, at most one partly filled session more per extra worker
    assert server.connections <= math.ceil(14 / 3) + connections - 1
    assert report.connections_opened == server.connections
    if connections == 1:
        assert server.connections == math.ceil(14 / 3)


# --- who receives -----------------------------------------------------------------------------


def test_rule12_an_unsubscribe_during_the_run_excludes_every_later_message(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    add_members(ws, 5)
    leaving = "reader003@example.org"  # far behind in id order
    handler = handler_of(server)
    with open_store_for(ws) as store:
        leaver_id = store.get_by_email(leaving).id  # type: ignore[union-attr]

    def unsubscribe_after_two(count: int, rcpt: str) -> None:
        if count == 2:
            with open_store_for(ws) as store:
                store.unsubscribe(leaver_id, consent=Consent(source="web"), list_name="main")

    handler.after_store = unsubscribe_after_two
    report = send_issue(ws, issue, smtp_url=server.url, connections=1, tuning=FAST)
    counts = handler.per_address()
    assert leaving not in counts
    assert report.skipped == 1 and report.sent == 9
    assert ledger(ws)[leaving][0] == "skipped"


def test_rule12_under_a_rate_limit_no_row_waits_claimed_while_its_reader_leaves(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """With --rate, rows are claimed (and checked) only when they may go at once: a row
    claimed early would wait for its slot unchecked, past its reader's unsubscribe."""
    add_members(ws, 3)
    leavers: list[str] = []

    def unsubscribe_the_next_reader(count: int, rcpt: str) -> None:
        if count != 2:
            return
        with open_store_for(ws) as store, store.read() as conn:
            rows = conn.execute(
                select(deliveries.c.subscriber_id, deliveries.c.email).order_by(deliveries.c.id)
            ).all()
        following = [row for row in rows if row.email != rcpt][count - 1]  # next in line
        leavers.append(following.email)
        with open_store_for(ws) as store:
            store.unsubscribe(
                following.subscriber_id, consent=Consent(source="web"), list_name="main"
            )

    handler_of(server).after_store = unsubscribe_the_next_reader
    # 5 a second: the next slot is 200 ms after this message, far beyond the hook
    report = send_issue(ws, issue, smtp_url=server.url, connections=4, rate=5.0, tuning=FAST)
    assert len(leavers) == 1 and leavers[0] not in handler_of(server).per_address()
    assert (report.sent, report.skipped) == (7, 1)


def test_rule12_a_reader_leaving_during_a_reconnect_backoff_is_not_retried(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    handler = handler_of(server)
    handler.data_script.extend(["421 4.3.2 busy, come back later"])  # the first message
    leavers: list[str] = []

    def unsubscribe(rcpt: str) -> None:  # committed before the 421 goes out
        leavers.append(rcpt)
        with open_store_for(ws) as store:
            subscriber = store.get_by_email(rcpt)
            assert subscriber is not None
            store.unsubscribe(subscriber.id, consent=Consent(source="web"), list_name="main")

    handler.before_refusal = unsubscribe
    report = send_issue(ws, issue, smtp_url=server.url, connections=1, tuning=FAST)
    assert len(leavers) == 1 and leavers[0] not in handler.per_address()
    assert (report.sent, report.skipped) == (4, 1)
    assert ledger(ws)[leavers[0]][0] == "skipped"


def test_rule26_pending_members_never_receive(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    with open_store_for(ws) as store:
        store.add_pending("waiting@example.org", list_name="main", consent=Consent(source="web"))
    assert plan_send(ws, issue).recipients == 5
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert "waiting@example.org" not in handler_of(server).per_address()
    assert "waiting@example.org" not in ledger(ws)


def test_erasing_a_subscriber_scrubs_the_ledger(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    with open_store_for(ws) as store:
        store.erase("ada.lovelace@example.com", consent=Consent(source="cli"))
    rows = ledger(ws)
    assert "ada.lovelace@example.com" not in rows and rows[None][0] == "sent"  # type: ignore[index]


# --- the sender rules checked before anything goes out -----------------------------------------


def _html_size(ws: Workspace, issue: Path) -> int:
    from newsletter.compose.issue_file import read_issue
    from newsletter.render.pipeline import render_issue

    return len(render_issue(ws, read_issue(issue)).html.encode())


def test_rule16_html_over_100kb_is_refused_and_over_90kb_warned(
    ws: Workspace, server: LedgerServer
) -> None:
    base = _html_size(ws, write_issue(ws.root, "probe"))
    word = "harbour "
    big = write_issue(ws.root, "big", intro=word * ((101 * 1024 - base) // len(word) + 10))
    with pytest.raises(RenderError, match="over the 100 KB limit"):
        send_issue(ws, big, smtp_url=server.url, tuning=FAST)
    with open_store_for(ws) as store, store.read() as conn:
        assert conn.scalar(select(campaigns.c.id)) is None
    near = write_issue(ws.root, "near", intro=word * ((95 * 1024 - base) // len(word)))
    assert 90 * 1024 < _html_size(ws, near) <= 100 * 1024
    report = send_issue(ws, near, smtp_url=server.url, tuning=FAST)
    assert report.sent == 5
    assert any("close to Gmail's clipping" in w for w in report.warnings)


def test_rule17_commercial_send_needs_a_postal_address(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    nowhere = with_config(ws, "publication", postal_address="")
    with pytest.raises(ConfigError, match=r"needs publication\.postal_address"):
        plan_send(nowhere, issue)
    with pytest.raises(ConfigError, match=r"needs publication\.postal_address"):
        send_issue(nowhere, issue, smtp_url=server.url, tuning=FAST)
    assert handler_of(server).received == []
    hobby = with_config(nowhere, "sender", commercial=False)
    assert send_issue(hobby, issue, smtp_url=server.url, tuning=FAST).sent == 5


# --- test sends and dry runs ----------------------------------------------------------------


def test_test_send_reaches_anyone_and_records_nothing(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    report = send_test(
        ws, issue, ["Ada.Lovelace@example.com, editor@example.org"], smtp_url=server.url
    )
    assert report.test and report.sent == 2
    handler = handler_of(server)
    assert set(handler.per_address()) == {"ada.lovelace@example.com", "editor@example.org"}
    tokens = UnsubscribeTokens(ws.secret_keys())
    for _, rcpt, data in handler.received:
        message = parsed(data)
        assert message["Subject"].startswith("[TEST] Harbour notes")
        assert message["X-Newsletter-Test"] == "yes"
        url = message["List-Unsubscribe"].split(",")[0].strip("<> ")
        claim = tokens.read(url.rsplit("/", 1)[1])
        assert (claim.subscriber_id, claim.list_id) == (0, 0)  # names nobody
        if rcpt == "ada.lovelace@example.com":
            assert "Ada Lovelace" in bodies(message)[0]
    with open_store_for(ws) as store, store.read() as conn:
        assert conn.scalar(select(campaigns.c.id)) is None
        assert conn.scalar(select(deliveries.c.id)) is None
    with pytest.raises(NewsletterError, match="not-an-address"):
        send_test(ws, issue, ["not-an-address"], smtp_url=server.url)


def test_dry_run_writes_the_exact_messages_and_touches_no_server(
    ws: Workspace, issue: Path, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = probe.getsockname()[1]
    # a server URL nobody answers: the dry run must not need it
    ws = Workspace(ws.root, ws.config, replace(ws.env, smtp_url=f"smtp://127.0.0.1:{nowhere}"))
    out = tmp_path / "dry"
    report = dry_run(ws, issue, out)
    assert report.count == 5
    files = sorted(out.glob("*.eml"))
    assert [f.name.split("-")[0] for f in files] == [f"{n:07d}" for n in range(1, 6)]
    recipients = {parsed(f.read_bytes())["To"].addresses[0].addr_spec for f in files}
    assert recipients == set(SAMPLE)
    assert sum(f.stat().st_size for f in files) == report.bytes
    manifest = (out / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "file,subscriber_id,mail_from,rcpt_to" and len(manifest) == 6
    with open_store_for(ws) as store, store.read() as conn:
        assert conn.scalar(select(deliveries.c.id)) is None
    with pytest.raises(NewsletterError, match="not an empty folder"):
        dry_run(ws, issue, out)


def test_an_empty_list_is_refused_before_anything_is_recorded(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    with open_store_for(ws) as store:
        store.ensure_list("weekly")
    assert plan_send(ws, issue, "weekly").recipients == 0
    with pytest.raises(NewsletterError, match="'weekly' has nobody to send to"):
        send_issue(ws, issue, list_name="weekly", smtp_url=server.url, tuning=FAST)
    with open_store_for(ws) as store, store.read() as conn:
        assert conn.scalar(select(campaigns.c.id)) is None  # importing later still works
    # a dry run refuses alike, before it writes anything
    with pytest.raises(NewsletterError, match="'weekly' has nobody to send to"):
        dry_run(ws, issue, ws.root / "dry", "weekly")
    assert not (ws.root / "dry").exists()


def test_plan_counts_the_list(ws: Workspace, issue: Path) -> None:
    plan = plan_send(ws, issue)
    assert (plan.state, plan.recipients, plan.subject) == (
        "new",
        5,
        "Harbour notes for %%first_name%%",
    )
    with pytest.raises(NewsletterError, match="no list named 'weekly'"):
        plan_send(ws, issue, "weekly")


def test_a_scheduled_send_runs_through_the_ledger(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    from newsletter.schedule.due import run_due
    from newsletter.schedule.scheduled import schedule_send

    ws = Workspace(ws.root, ws.config, replace(ws.env, smtp_url=server.url))
    now = datetime.now(UTC)
    schedule_send(ws, issue, f"{now:%Y-%m-%d %H:%M} UTC")  # this minute: due at once
    report = run_due(ws)
    assert [note for _, note in report.done] == [
        "sent 5, failed 0, deferred 0, skipped 0, unknown 0"
    ]
    assert handler_of(server).per_address() == Counter(dict.fromkeys(SAMPLE, 1))
    assert not run_due(ws).acted  # nothing left to do, nothing sent twice
    assert sum(handler_of(server).per_address().values()) == 5


# --- a fresh render is sent as it is, without loading the render stack ------------------------

# Imported only where needed (see render/mjml.py, message.py, smtp/embedded.py, compose/):
# a send whose issue folder holds a fresh render, without DKIM, to NEWSLETTER_SMTP_URL, loads
# none of them.
HEAVY_MODULES = (
    "jinja2",
    "mjml",
    "premailer",
    "cssutils",
    "lxml",
    "requests",
    "aiosmtpd",
    "dkim",
    "dns",
    "trafilatura",
    "feedparser",
    "httpx",
    "markdown_it",
    "pysbd",
)
SEND_PATH_PROBE = """
import hashlib, json, sys
from pathlib import Path

heavy = sys.argv[3].split(",")
import newsletter.deliver
from newsletter.deliver.content import render_for_send
from newsletter.workspace import load_workspace

at_import = [name for name in heavy if name in sys.modules]
rendered, warnings = render_for_send(load_workspace(Path(sys.argv[1])), Path(sys.argv[2]))
print(json.dumps({
    "at_import": at_import,
    "after_render": [name for name in heavy if name in sys.modules],
    "html": hashlib.sha256(rendered.html.encode()).hexdigest(),
    "text": hashlib.sha256(rendered.text.encode()).hexdigest(),
    "subject": rendered.subject,
    "warnings": warnings,
}))
"""


def test_a_fresh_render_is_sent_as_rendered_without_the_render_stack(
    ws: Workspace, issue: Path, server: LedgerServer, tmp_path: Path
) -> None:
    import hashlib
    import shutil
    import subprocess
    import sys

    from newsletter.compose.folder import render_issue_folder
    from newsletter.deliver.content import render_for_send
    from newsletter.render.stamp import SEND_HTML, STAMP_FILE

    render_issue_folder(ws, issue)
    # same folder name: the mail's "View in your browser" link is made from it
    unstamped = tmp_path / "unstamped" / issue.name
    shutil.copytree(issue, unstamped)
    (unstamped / STAMP_FILE).unlink()
    fresh, fresh_warnings = render_for_send(ws, unstamped)  # renders: no stamp

    probe = subprocess.run(
        [sys.executable, "-c", SEND_PATH_PROBE, str(ws.root), str(issue), ",".join(HEAVY_MODULES)],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(probe.stdout)
    assert seen["at_import"] == [] and seen["after_render"] == []
    assert seen["html"] == hashlib.sha256((issue / SEND_HTML).read_bytes()).hexdigest()
    assert seen["html"] == hashlib.sha256(fresh.html.encode()).hexdigest()
    assert seen["text"] == hashlib.sha256(fresh.text.encode()).hexdigest()
    assert (seen["subject"], seen["warnings"]) == (fresh.subject, fresh_warnings)

    report = send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert report.sent == 5
    with open_store_for(ws) as store, store.read() as conn:
        stored = conn.execute(select(campaigns.c.html, campaigns.c.text)).one()
    assert (stored.html, stored.text) == (fresh.html, fresh.text)


def test_a_send_that_loses_the_race_names_the_process_sending(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """Two real sends of a stopped campaign: B reads it (nobody running it), A takes it
    and waits in the server, then B tries: B refuses naming A's host and pid, never the
    runner it read before A took it ("None")."""
    stop = threading.Event()
    stop.set()
    assert send_issue(ws, issue, smtp_url=server.url, stop=stop, tuning=FAST).state == "stopped"
    b_read, a_holds, a_held, release = (threading.Event() for _ in range(4))

    def b_clock() -> datetime:  # B's first reading of the clock comes just before its claim
        if not b_read.is_set():
            b_read.set()
            assert a_holds.wait(30)
        return datetime.now(UTC)

    async def hold_a(session: SMTP, count: int) -> None:
        if count == 1:
            a_held.set()
            await asyncio.to_thread(release.wait, 30)

    handler_of(server).before_reply = hold_a
    outcome: dict[str, Any] = {}

    def run(name: str, tuning: SendTuning) -> None:
        try:
            outcome[name] = send_issue(ws, issue, smtp_url=server.url, tuning=tuning)
        except NewsletterError as exc:
            outcome[name] = exc

    b = threading.Thread(target=run, args=("b", replace(FAST, clock=b_clock)))
    a = threading.Thread(target=run, args=("a", FAST))
    b.start()
    try:
        assert b_read.wait(30), "B never read the campaign"
        a.start()
        assert a_held.wait(30), "A never reached the server"
        a_holds.set()
        b.join(30)
    finally:
        a_holds.set()
        release.set()
        b.join(30)
        if a.ident is not None:  # started
            a.join(30)
    refusal = outcome["b"]
    assert isinstance(refusal, NewsletterError), refusal
    assert f"by another process (process {os.getpid()} on {socket.gethostname()})" in str(refusal)
    assert outcome["a"].sent == 5


def test_latest_is_the_newest_issue_not_yet_sent_whatever_was_touched(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """--latest goes by the issue's date, not by when a file changed: touching an old
    issue does not make it the latest; a fully sent issue is passed over."""
    older = write_issue(ws.root, "2026-11-20-harbour")
    data = json.loads((older / "issue.json").read_text(encoding="utf-8"))
    (older / "issue.json").write_text(json.dumps({**data, "date": "2026-11-20"}), "utf-8")
    future = datetime.now(UTC).timestamp() + 3600
    os.utime(older / "issue.json", (future, future))  # edited (or touched) last
    assert latest_issue(ws) == issue
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert latest_issue(ws) == older  # the newest one is sent: the next unsent
    with open_store_for(ws) as store:
        store.ensure_list("weekly")
    assert latest_issue(ws, "weekly") == issue  # never sent to that list
    send_issue(ws, older, smtp_url=server.url, tuning=FAST)
    with pytest.raises(NewsletterError, match="already sent to list 'main'") as info:
        latest_issue(ws)
    assert "compose a new issue" in str(info.value.hint)


def test_latest_names_an_issue_whose_date_cannot_be_read(ws: Workspace, issue: Path) -> None:
    broken = ws.root / "issues" / "2026-11-30-draft"
    broken.mkdir()
    (broken / "issue.json").write_text('{"subject": "half written"', encoding="utf-8")
    with pytest.raises(NewsletterError, match=r"2026-11-30-draft/issue\.json: cannot read"):
        latest_issue(ws)
