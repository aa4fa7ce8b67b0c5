"""Several senders on one campaign (store/senders.py, deliver/send.py), on a real SQLite
file against a real aiosmtpd server on loopback: joining a running campaign, leaving it
to the others, taking up a dead sender's rows, sharing a campaign-wide rate."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from sqlalchemy import insert, select, update

from ledger_server import FAST, SAMPLE, LedgerServer, add_members, handler_of
from newsletter.deliver import plan_send, send_issue
from newsletter.deliver.engine import LedgerRun
from newsletter.deliver.history import issue_history
from newsletter.deliver.reports import SendProgress, SendReport
from newsletter.store import open_store_for
from newsletter.store.campaigns import campaigns, skip_waiting
from newsletter.store.deliveries import Result, deliveries
from newsletter.store.ledger import LedgerSession, Sender
from newsletter.store.senders import Beat, campaign_senders, sender_counts
from newsletter.workspace import Workspace


def _first_run_stopped(ws: Workspace, issue: Path, server: LedgerServer) -> int:
    """A campaign created and queued, nothing sent -> its id."""
    stop = threading.Event()
    stop.set()
    report = send_issue(ws, issue, smtp_url=server.url, stop=stop, tuning=FAST)
    assert report.state == "stopped" and report.campaign_id is not None
    return report.campaign_id


def _fake_sender(ws: Workspace, campaign_id: int, holder: str, rows: int) -> list[int]:
    """Record a sender ``holder`` that holds ``rows`` queued rows in flight -> their ids."""
    now = datetime.now(UTC)
    with open_store_for(ws) as store, store.write() as conn:
        sender_id = conn.execute(
            insert(campaign_senders)
            .values(
                campaign_id=campaign_id,
                holder=holder,
                state="running",
                heartbeat_at=now,
                started_at=now,
            )
            .returning(campaign_senders.c.id)
        ).scalar_one()
        held = list(
            conn.scalars(
                select(deliveries.c.id)
                .where(deliveries.c.status == "queued")
                .order_by(deliveries.c.id)
                .limit(rows)
            )
        )
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(held))
            .values(status="sending", sender_id=sender_id, attempts=1)
        )
        conn.execute(update(campaigns).values(state="running", runner=holder, heartbeat_at=now))
    return held


def test_a_send_joins_a_running_one_and_every_reader_gets_one_copy(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """A holds its first message in the server; B starts meanwhile, joins and sends the
    rest, then waits for A's message before it leaves; the last to leave finishes it."""
    add_members(ws, 15)
    a_held, release = threading.Event(), threading.Event()

    async def hold_first(session: SMTP, count: int) -> None:
        if count == 1:
            a_held.set()
            await asyncio.to_thread(release.wait, 30)

    handler_of(server).before_reply = hold_first
    quick = replace(FAST, heartbeat_seconds=0.05)
    outcome: dict[str, Any] = {}

    def run(name: str, **options: Any) -> None:
        outcome[name] = send_issue(
            ws, issue, smtp_url=server.url, connections=1, tuning=quick, **options
        )

    def release_when_b_is_done(progress: SendProgress) -> None:
        if progress.done == 19:  # everything but A's message: B now waits for it
            release.set()

    a = threading.Thread(target=run, args=("a",))
    a.start()
    try:
        assert a_held.wait(30), "A never reached the server"
        run("b", progress=release_when_b_is_done)
    finally:
        release.set()
        a.join(30)
    a_report, b_report = outcome["a"], outcome["b"]
    assert isinstance(a_report, SendReport) and isinstance(b_report, SendReport)
    assert (a_report.sent, b_report.sent) == (1, 19)
    assert {a_report.state, b_report.state} == {"finished", "running"}
    assert set(handler_of(server).per_address().values()) == {1}
    assert len(handler_of(server).per_address()) == 20
    with open_store_for(ws) as store, store.read() as conn:
        assert sender_counts(conn, a_report.campaign_id or 0)["left"] == 2
        assert conn.scalar(select(campaigns.c.state)) == "finished"
    assert len(issue_history(ws)) == 1  # one campaign, one line


def test_a_live_senders_rows_are_left_to_it_and_waited_for(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """The joiner sends the rest, then waits (looking each heartbeat) until the live
    sender's rows are done; it never takes them, and being last it finishes the campaign."""
    campaign_id = _first_run_stopped(ws, issue, server)
    alive = f"{socket.gethostname()}:{os.getppid()}:1"  # our parent: a live process
    held = _fake_sender(ws, campaign_id, alive, rows=2)

    def the_other_finishes(progress: SendProgress) -> None:
        if progress.done == 3:
            with open_store_for(ws) as store, store.write() as conn:
                conn.execute(
                    update(deliveries).where(deliveries.c.id.in_(held)).values(status="sent")
                )
                conn.execute(
                    update(campaign_senders)
                    .where(campaign_senders.c.holder == alive)
                    .values(state="left")
                )

    quick = replace(FAST, heartbeat_seconds=0.05)
    joined = send_issue(ws, issue, smtp_url=server.url, tuning=quick, progress=the_other_finishes)
    assert (joined.sent, joined.recovered, joined.state) == (3, 0, "finished")
    assert sum(handler_of(server).per_address().values()) == 3  # the other's two: never


@pytest.mark.parametrize("where", ["this host, process gone", "elsewhere, silent"])
def test_a_dead_senders_rows_are_sent_again(
    ws: Workspace, issue: Path, server: LedgerServer, where: str
) -> None:
    campaign_id = _first_run_stopped(ws, issue, server)
    if where.startswith("this host"):
        holder = f"{socket.gethostname()}:4194999:1"  # no such process
    else:
        holder = "another-host.example:4242:1"  # its pid cannot be checked from here
    held = _fake_sender(ws, campaign_id, holder, rows=2)
    if where.endswith("silent"):
        with open_store_for(ws) as store, store.write() as conn:
            beat = datetime.now(UTC) - timedelta(seconds=FAST.stale_after_seconds + 5)
            conn.execute(update(campaign_senders).values(heartbeat_at=beat))
    report = send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert (report.sent, report.recovered, report.state) == (5, 2, "finished")
    assert handler_of(server).per_address() == Counter(dict.fromkeys(SAMPLE, 1))
    with open_store_for(ws) as store, store.read() as conn:
        assert sender_counts(conn, campaign_id)["lost"] == 1
        sent_by = conn.execute(
            select(deliveries.c.sender_id).where(deliveries.c.id.in_(held))
        ).scalars()
        assert None not in set(sent_by)  # each row names the sender that recorded it


def test_the_plan_says_a_send_would_join_a_running_one(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    campaign_id = _first_run_stopped(ws, issue, server)
    assert not plan_send(ws, issue).running
    _fake_sender(ws, campaign_id, f"{socket.gethostname()}:{os.getppid()}:1", rows=1)
    plan = plan_send(ws, issue)
    assert plan.running and plan.recipients == 5  # four queued, one in the other's hands


def test_a_campaign_rate_is_shared_by_the_live_senders_and_a_sender_rate_caps_it() -> None:
    def limit(**options: Any) -> float:
        run = LedgerRun(**{**dict.fromkeys(_REQUIRED), "total": 1, **options})
        return run._limiter.interval

    assert limit(campaign_rate=30.0, senders=3) == pytest.approx(1 / 10)
    assert limit(campaign_rate=30.0, senders=1) == pytest.approx(1 / 30)
    assert limit(campaign_rate=30.0, senders=3, rate=5.0) == pytest.approx(1 / 5)
    assert limit(rate=5.0, senders=3) == pytest.approx(1 / 5)  # a sender's own rate: not shared
    assert limit(senders=3) == 0.0  # no limit

    run = LedgerRun(**{**dict.fromkeys(_REQUIRED), "total": 1, "campaign_rate": 30.0})
    run._lanes = None  # type: ignore[assignment]  # _heard touches no lane for a held lease
    run._heard(Beat(held=True, live=2, recovered=0))
    assert run._limiter.interval == pytest.approx(1 / 15)  # a second sender joined


_REQUIRED = (
    "store",
    "campaign_id",
    "list_id",
    "runner",
    "template",
    "smtp",
    "send_config",
    "connections",
)


def test_leaving_a_list_skips_the_rows_still_waiting_in_its_campaigns(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    campaign_id = _first_run_stopped(ws, issue, server)
    with open_store_for(ws) as store:
        leaver = store.get_by_email(next(iter(SAMPLE)))
        list_id = store.list_id("main")
        assert leaver is not None and list_id is not None
        with store.write() as conn:
            in_flight = skip_waiting(conn, [(leaver.id, list_id), (leaver.id, list_id + 1)], NOW)
        with store.read() as conn:
            rows = dict(
                conn.execute(
                    select(deliveries.c.subscriber_id, deliveries.c.status).where(
                        deliveries.c.campaign_id == campaign_id
                    )
                ).all()
            )
    assert in_flight == set()
    assert rows.pop(leaver.id) == "skipped"
    assert set(rows.values()) == {"queued"}  # nobody else's


NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_a_sender_that_lost_its_rows_cannot_record_or_hand_them_back(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """Rows now held by another sender keep that sender's state, whatever a sender that
    lost them (its lease taken after a long silence) still reports for them."""
    campaign_id = _first_run_stopped(ws, issue, server)
    other = f"{socket.gethostname()}:{os.getppid()}:1"
    sent_row, handed_row = _fake_sender(ws, campaign_id, other, rows=2)
    with open_store_for(ws) as store:
        list_id = store.list_id("main") or 0
        with LedgerSession(store, campaign_id, list_id, Sender(10_000, "gone:1:1")) as old:
            old.step([Result(sent_row, "sent"), Result(handed_row, "queued")], 0, NOW)
        with store.read() as conn:
            rows = conn.execute(
                select(deliveries.c.status, deliveries.c.sender_id).where(
                    deliveries.c.id.in_([sent_row, handed_row])
                )
            ).all()
    assert {status for status, _ in rows} == {"sending"}
    assert len({sender for _, sender in rows}) == 1  # still the other sender's
