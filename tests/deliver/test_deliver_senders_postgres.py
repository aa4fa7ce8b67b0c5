"""Several ``newsletter send`` processes on one campaign, on a real throwaway PostgreSQL,
against a loopback SMTP server that takes 20 ms to answer each message (a relay's
round trip): three senders share the work, a ``kill -9`` of one costs at most its
connections in duplicates, and a sender that loses the database stops with one line.

Skipped where the PostgreSQL server binaries or psycopg are missing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from sqlalchemy import create_engine, func, select, text

from ledger_server import FAST, LedgerHandler, LedgerServer, add_members, write_issue
from newsletter.audience.importing import import_file
from newsletter.deliver import send_issue
from newsletter.errors import StoreError
from newsletter.store import open_store_for
from newsletter.store.deliveries import deliveries
from newsletter.store.senders import campaign_senders
from newsletter.workspace import Workspace

REPLY_SECONDS = 0.02  # the server's answer time per message
READERS = 360


class SlowHandler(LedgerHandler):
    """Answers each stored message after ``REPLY_SECONDS``, like a relay across a network,
    and sets ``progress`` after each one."""

    def __init__(self) -> None:
        super().__init__()
        self.progress = threading.Event()
        self.before_reply = self._wait

    async def _wait(self, session: SMTP, count: int) -> None:
        self.progress.set()
        await asyncio.sleep(REPLY_SECONDS)


@pytest.fixture
def slow_server() -> Iterator[LedgerServer]:
    controller = LedgerServer(SlowHandler())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def pg_ws(workspace: Workspace, pg_url: str) -> Workspace:
    """The sample workspace on a fresh PostgreSQL database, READERS on list main."""
    ws = replace(workspace, env=replace(workspace.env, database_url=pg_url))
    with open_store_for(ws) as store:
        import_file(
            store, ws.root / "subscribers" / "subscribers.csv", list_name=None, default_list="main"
        )
    add_members(ws, READERS - 5)
    return ws


def _start_senders(
    ws: Workspace, issue: Path, server: LedgerServer, count: int, connections: int = 1
) -> list[Any]:
    """``count`` real ``newsletter send`` processes of ``issue``, started together."""
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": ws.env.database_url or "",
        "NEWSLETTER_SMTP_URL": server.url,
    }
    command = [sys.executable, "-m", "newsletter", "send", str(issue), "--yes"]
    return [
        subprocess.Popen(
            [*command, "--connections", str(connections)],
            cwd=ws.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def _sending_seconds(ws: Workspace) -> float:
    """From the first sender's start to the last message recorded sent."""
    with open_store_for(ws) as store, store.read() as conn:
        start: datetime = conn.scalar(select(func.min(campaign_senders.c.started_at)))
        end: datetime = conn.scalar(select(func.max(deliveries.c.sent_at)))
    return (end - start).total_seconds()


def _per_sender(ws: Workspace) -> Counter[int]:
    with open_store_for(ws) as store, store.read() as conn:
        rows = conn.execute(
            select(deliveries.c.sender_id).where(deliveries.c.status == "sent")
        ).scalars()
        return Counter(rows)


def test_three_senders_finish_in_well_under_half_the_time_of_one(
    pg_ws: Workspace, slow_server: LedgerServer, pg_url: str
) -> None:
    handler = slow_server.handler
    assert isinstance(handler, SlowHandler)
    three_ws = replace(pg_ws, env=replace(pg_ws.env, database_url=_fresh_copy(pg_url)))
    issue = write_issue(pg_ws.root)
    (one,) = _start_senders(pg_ws, issue, slow_server, 1)
    assert one.wait(120) == 0, one.stderr.read()
    one_seconds = _sending_seconds(pg_ws)

    together = issue
    handler.received.clear()
    senders = _start_senders(three_ws, together, slow_server, 3)
    for sender in senders:
        assert sender.wait(120) == 0, sender.stderr.read()
    three_seconds = _sending_seconds(three_ws)

    assert handler.per_address() == Counter({address: 1 for address in handler.per_address()})
    assert len(handler.per_address()) == READERS
    shares = _per_sender(three_ws)
    assert len(shares) == 3 and min(shares.values()) > 0, shares
    print(f"\none sender {one_seconds:.2f} s, three senders {three_seconds:.2f} s {shares}")
    assert three_seconds < 0.5 * one_seconds


def _fresh_copy(pg_url: str) -> str:
    """A new database holding a copy of ``pg_url``'s (its readers, no campaign yet)."""
    base, _, query = pg_url.partition("?")
    name = base.rsplit("/", 1)[1]
    copy = f"{name}_copy"
    admin = create_engine(
        f"{base.rsplit('/', 1)[0]}/postgres?{query}", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{copy}"'))
        conn.execute(text(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"'))
    admin.dispose()
    return f"{base.rsplit('/', 1)[0]}/{copy}?{query}"


def _sender_mid_run(ws: Workspace, handler: SlowHandler, senders: list[Any]) -> Any:
    """Wait, message by message, until one of ``senders`` has sent some and holds rows
    in flight -> that process."""
    by_pid = {sender.pid: sender for sender in senders}
    for _ in range(READERS):
        assert handler.progress.wait(60), "the senders stopped sending"
        handler.progress.clear()
        with open_store_for(ws) as store, store.read() as conn:
            rows = conn.execute(
                select(campaign_senders.c.holder, deliveries.c.status, func.count())
                .join(deliveries, deliveries.c.sender_id == campaign_senders.c.id)
                .where(campaign_senders.c.state == "running")
                .group_by(campaign_senders.c.holder, deliveries.c.status)
            ).all()
        found: dict[int, Counter[str]] = {}
        for holder, status, count in rows:
            found.setdefault(int(holder.split(":")[1]), Counter())[status] = count
        for pid, statuses in found.items():
            if pid in by_pid and statuses["sent"] >= 10 and statuses["sending"]:
                return by_pid[pid]
    raise AssertionError("no sender was ever caught mid-run")


def test_a_sender_killed_mid_run_costs_at_most_its_connections_in_duplicates(
    pg_ws: Workspace, slow_server: LedgerServer
) -> None:
    handler = slow_server.handler
    assert isinstance(handler, SlowHandler)
    issue = write_issue(pg_ws.root)
    connections = 2
    senders = _start_senders(pg_ws, issue, slow_server, 3, connections)
    victim = _sender_mid_run(pg_ws, handler, senders)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(30)  # reaped at once, as its service manager or shell would
    for sender in senders:
        code = sender.wait(120)
        assert code == (-signal.SIGKILL if sender is victim else 0), sender.stderr.read()

    (rerun,) = _start_senders(pg_ws, issue, slow_server, 1)
    rerun.wait(120)
    # the survivors took up the victim's rows at once (its pid is gone): nothing is left
    assert "was already sent" in rerun.stderr.read()
    counts = handler.per_address()
    assert len(counts) == READERS  # nobody missed
    assert sum(n - 1 for n in counts.values()) <= connections  # duplicates: its in-flight rows


def test_a_sender_that_loses_the_database_stops_with_one_line_and_a_rerun_completes(
    pg_ws: Workspace, slow_server: LedgerServer, pg_url: str
) -> None:
    handler = slow_server.handler
    assert isinstance(handler, SlowHandler)
    base, _, query = pg_url.partition("?")
    database = base.rsplit("/", 1)[1]
    admin = create_engine(
        f"{base.rsplit('/', 1)[0]}/postgres?{query}", isolation_level="AUTOCOMMIT"
    )

    def cut_at_twenty(count: int, rcpt: str) -> None:
        if count == 20:  # every connection to the campaign's database is cut
            with admin.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": database},
                )

    handler.after_store = cut_at_twenty
    issue = write_issue(pg_ws.root)
    connections = 2
    try:
        with pytest.raises(StoreError, match="lost the database while sending") as lost:
            send_issue(pg_ws, issue, smtp_url=slow_server.url, connections=connections, tuning=FAST)
    finally:
        admin.dispose()
    assert "\n" not in str(lost.value)
    handler.after_store = None

    rerun = send_issue(pg_ws, issue, smtp_url=slow_server.url, tuning=FAST)
    assert rerun.state == "finished" and rerun.recovered <= connections
    counts = handler.per_address()
    assert len(counts) == READERS
    assert sum(n - 1 for n in counts.values()) <= connections
