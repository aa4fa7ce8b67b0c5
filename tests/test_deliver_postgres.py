"""The delivery ledger on a real PostgreSQL server: the precompiled claim/record statements,
INSERT ... SELECT enqueue, bounces and deferrals are portable SQL.

The throwaway cluster is ``pg_server`` in conftest.py. Skipped where the PostgreSQL
server binaries or psycopg are missing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

from newsletter.audience.importing import import_file
from newsletter.deliver import send_issue
from newsletter.store import open_store_for
from newsletter.workspace import Workspace
from test_deliver import (
    FAST,
    SAMPLE,
    LedgerHandler,
    LedgerServer,
    add_members,
    ledger,
    write_issue,
)

pytest.importorskip("psycopg")


@pytest.fixture
def pg_ws(workspace: Workspace, pg_url: str) -> Workspace:
    ws = Workspace(workspace.root, workspace.config, replace(workspace.env, database_url=pg_url))
    with open_store_for(ws) as store:
        import_file(
            store, ws.root / "subscribers" / "subscribers.csv", list_name=None, default_list="main"
        )
    return ws


@pytest.fixture
def server() -> Iterator[LedgerServer]:
    controller = LedgerServer(LedgerHandler())
    controller.start()
    yield controller
    controller.stop()


def test_send_resume_bounce_and_defer_on_postgresql(pg_ws: Workspace, server: LedgerServer) -> None:
    add_members(pg_ws, 10)
    issue = write_issue(pg_ws.root)
    handler = server.handler
    assert isinstance(handler, LedgerHandler)
    handler.rcpt_replies["grace.hopper@example.net"] = "550 5.1.1 no such user"
    handler.rcpt_replies["kofi.mensah@example.net"] = "451 4.2.1 mailbox busy"
    handler.data_script.extend(["421 4.3.2 busy"] * 3)

    report = send_issue(pg_ws, issue, smtp_url=server.url, connections=3, tuning=FAST)

    assert (report.sent, report.failed, report.deferred) == (13, 1, 1)
    assert report.state == "waiting"
    rows = ledger(pg_ws)
    assert rows["grace.hopper@example.net"][0] == "failed"
    assert rows["kofi.mensah@example.net"][0] == "deferred"
    with open_store_for(pg_ws) as store:
        assert store.get_by_email("grace.hopper@example.net").status == "bounced"  # type: ignore[union-attr]
    counts = handler.per_address()
    assert len(counts) == 13 and set(counts.values()) == {1}
    assert set(SAMPLE) - set(counts) == {"grace.hopper@example.net", "kofi.mensah@example.net"}
    assert Counter(status for status, _, _ in rows.values()) == Counter(
        {"sent": 13, "failed": 1, "deferred": 1}
    )
