"""The ledger loop (deliver/engine.py, deliver/lanes.py, deliver/outcomes.py) against a real
aiosmtpd server on loopback: what each SMTP outcome records, reconnects and their backoff,
the server refusing sessions, per-connection caps, the rate limit, and unsubscribes while
a run goes on. Time for deferrals comes from an injected clock."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import math
import socket
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from sqlalchemy import select

from ledger_server import (
    DROP_AFTER,
    DROP_BEFORE,
    FAST,
    SAMPLE,
    FakeClock,
    LedgerHandler,
    LedgerServer,
    add_members,
    campaign_state,
    handler_of,
    ledger,
    tls_server,
    with_send,
)
from newsletter.deliver import (
    SendTuning,
    plan_send,
    retry_due_deferrals,
    send_issue,
)
from newsletter.errors import AlreadySentError, DeliveryError
from newsletter.store import Consent, ImportRow, open_store_for
from newsletter.store.deliveries import deliveries
from newsletter.workspace import Workspace

# --- outcomes -------------------------------------------------------------------------------


def test_5xx_fails_that_recipient_only_and_hard_bounces_suppress(
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


def test_4xx_defers_with_backoff_then_gives_up(
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


def test_421_for_a_while_fails_nobody_and_doubles_nobody(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    handler = handler_of(server)
    handler.data_script.extend(["421 4.3.2 too busy, come back later"] * 5)
    report = send_issue(ws, issue, smtp_url=server.url, connections=2, tuning=FAST)
    assert (report.sent, report.failed, report.deferred) == (5, 0, 0)
    assert handler.per_address() == Counter(dict.fromkeys(SAMPLE, 1))
    assert server.connections > 2  # it reconnected


def test_a_drop_before_the_data_is_retried_once_delivered(
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


def test_a_server_silent_after_the_data_leaves_that_message_unknown_and_goes_on(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """No reply to the data within send.timeout_seconds: maybe delivered (unknown), the
    connection is dropped, the other messages go out on a new one."""

    async def silent_once(session: SMTP, count: int) -> None:
        if count == 1:
            await asyncio.sleep(30)  # until the client gives up and closes

    handler_of(server).before_reply = silent_once
    report = send_issue(
        with_send(ws, timeout_seconds=0.5), issue, smtp_url=server.url, connections=1, tuning=FAST
    )
    assert (report.sent, report.unknown, report.failed) == (4, 1, 0)
    assert report.connections_opened == 2


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


def test_wrong_password_stops_the_run(ws: Workspace, issue: Path, tmp_path: Path) -> None:
    with (
        tls_server(tmp_path, login_ok=False) as (controller, url),
        pytest.raises(DeliveryError, match="login rejected") as info,
    ):
        send_issue(ws, issue, smtp_url=url.format(password="wrong"), tuning=FAST)
    assert "wrong" not in str(info.value).replace("wrong password", "")
    assert {status for status, _, _ in ledger(ws).values()} == {"queued"}
    assert handler_of(controller).received == []


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
    engine_log = logging.getLogger("newsletter.deliver.lanes")
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
def test_per_connection_cap(
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


def test_an_unsubscribe_during_the_run_excludes_every_later_message(
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


def test_under_a_rate_limit_no_row_waits_claimed_while_its_reader_leaves(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """With --rate, rows are claimed (and checked) only when they may go at once: a row
    claimed early would wait for its slot unchecked, past its reader's unsubscribe.

    The limiter's clock moves only in the server's hook, one slot per message stored, so
    the next slot opens exactly after the hook has unsubscribed the next reader."""
    add_members(ws, 3)
    leavers: list[str] = []
    seconds = [0.0]

    def unsubscribe_the_next_reader(count: int, rcpt: str) -> None:
        if count == 2:
            unsubscribe_the_following(rcpt, count)
        seconds[0] += 0.2  # 5 a second: this message's slot is over

    def unsubscribe_the_following(rcpt: str, count: int) -> None:
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
    tuning = replace(FAST, monotonic=lambda: seconds[0])
    report = send_issue(ws, issue, smtp_url=server.url, connections=4, rate=5.0, tuning=tuning)
    assert len(leavers) == 1 and leavers[0] not in handler_of(server).per_address()
    assert (report.sent, report.skipped) == (7, 1)


def test_a_reader_leaving_during_a_reconnect_backoff_is_not_retried(
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
