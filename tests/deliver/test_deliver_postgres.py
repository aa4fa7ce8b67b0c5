"""The delivery ledger on a real PostgreSQL server: the precompiled claim/record statements,
INSERT ... SELECT enqueue, bounces and deferrals are portable SQL.

A throwaway cluster is made with ``initdb`` in a temporary folder, reached over its Unix
socket only. Skipped where the PostgreSQL server binaries or psycopg are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ledger_server import (
    FAST,
    SAMPLE,
    LedgerHandler,
    LedgerServer,
    add_members,
    ledger,
    write_issue,
)
from newsletter.audience.importing import import_file
from newsletter.deliver import send_issue
from newsletter.store import open_store_for
from newsletter.workspace import Workspace

pytest.importorskip("psycopg")


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def pg_prefix() -> Iterator[str]:
    bin_dir = _bin_dir()
    if bin_dir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("PostgreSQL server binaries are not installed")
    folder = Path(tempfile.mkdtemp(prefix="nl-deliver-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        ),
        **quiet,  # type: ignore[call-overload]
    )
    options = f"-c listen_addresses='' -c unix_socket_directories={folder} -p {port}"
    pg_ctl = str(bin_dir / "pg_ctl")
    subprocess.run(
        _as_postgres(
            [pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "start"]
        ),
        **quiet,  # type: ignore[call-overload]
    )
    try:
        yield f"postgresql+psycopg://postgres@/{{db}}?host={folder}&port={port}"
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_ws(workspace: Workspace, pg_prefix: str, request: pytest.FixtureRequest) -> Workspace:
    name = "d_" + request.node.name.lower()[:40]
    admin = create_engine(pg_prefix.format(db="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    ws = Workspace(
        workspace.root,
        workspace.config,
        replace(workspace.env, database_url=pg_prefix.format(db=name)),
    )
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
