"""Scheduled sends on a real PostgreSQL server: several schedulers racing for the same due
sends start each one exactly once, and missed sends are marked once.

Uses the throwaway cluster of ``test_store_postgres`` (skipped where PostgreSQL's server
binaries or psycopg are missing).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from newsletter.schedule.due import run_due
from newsletter.schedule.scheduled import schedule_send
from newsletter.store import Consent, open_store
from newsletter.store.schedules import ScheduledSend, get_schedule
from newsletter.workspace import Workspace, load_workspace

pytest.importorskip("psycopg")

BEFORE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
DUE = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def _issues(ws: Workspace, count: int) -> list[Path]:
    folders = []
    for number in range(count):
        folder = ws.issues_dir / f"2026-12-01-brief-{number}"
        folder.mkdir(parents=True)
        issue = {
            "subject": f"Brief {number}",
            "date": "2026-12-01",
            "teasers": [{"title": "Tides", "summary": "High.", "url": "https://example.org/t"}],
        }
        (folder / "issue.json").write_text(json.dumps(issue), encoding="utf-8")
        folders.append(folder)
    return folders


def test_racing_schedulers_on_postgresql_start_each_send_once(
    pg_url: str,
    workspace_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k")
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", pg_url)
    ws = load_workspace(workspace_dir)
    with open_store(pg_url) as store:
        store.add("ann@example.org", list_name="main", consent=Consent(source="cli"))
    with time_machine.travel(BEFORE, tick=False):
        ids = [schedule_send(ws, folder, "2026-12-01 08:00").id for folder in _issues(ws, 3)]
        late = schedule_send(ws, _issues_late(ws), "2026-11-30 08:00").id
    started: list[int] = []
    lock = threading.Lock()

    def runner(workspace: Workspace, scheduled: ScheduledSend) -> str:
        with lock:
            started.append(scheduled.id)
        return "sent"

    missed: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def scheduler(number: int) -> None:
        with open_store(pg_url) as own:
            barrier.wait()
            try:
                report = run_due(ws, runner=runner, store=own, worker=f"serve-{number}")
                with lock:
                    missed.extend(i for i, _ in report.missed)
            except BaseException as exc:  # reported below; a thread cannot raise into pytest
                errors.append(exc)

    with time_machine.travel(DUE, tick=True):
        threads = [threading.Thread(target=scheduler, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert sorted(started) == sorted(ids)  # each due send once, by exactly one process
    assert missed == [late]  # a day late: reported once, never started
    with open_store(pg_url) as store:
        states = {i: get_schedule(store, i).state for i in [*ids, late]}  # type: ignore[union-attr]
    assert states == {**dict.fromkeys(ids, "done"), late: "missed"}


def _issues_late(ws: Workspace) -> Path:
    folder = ws.issues_dir / "2026-11-30-brief"
    folder.mkdir(parents=True)
    issue = {
        "subject": "Late brief",
        "date": "2026-11-30",
        "teasers": [{"title": "Ebb", "summary": "Low.", "url": "https://example.org/e"}],
    }
    (folder / "issue.json").write_text(json.dumps(issue), encoding="utf-8")
    return folder
