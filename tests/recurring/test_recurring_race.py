"""Two run-due processes racing on one occurrence compose it once and number it once;
pause, skip and approval hold an occurrence back; the config names a bad series."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from series_fixtures import Recorder, add_readers, series_workspace, smtp, write_feed

from newsletter.errors import ConfigError, NewsletterError
from newsletter.recurring.manage import approve_issue, pause_series, series_status, skip_next
from newsletter.schedule.due import RunReport, run_due
from newsletter.store import open_store_for
from newsletter.store.featured import featured_keys
from newsletter.store.occurrences import series_occurrences
from newsletter.workspace import Workspace

__all__ = ["smtp"]

FRIDAY = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
ITEMS = [
    ("Bridge repairs finish early", "bridge", "Thu, 03 Dec 2026 09:00:00 +0000"),
    ("Choir records in the old mine", "choir", "Wed, 02 Dec 2026 09:00:00 +0000"),
]


def _states(ws: Workspace) -> list[tuple[str, int | None]]:
    with open_store_for(ws) as store:
        return [(o.state, o.number) for o in reversed(series_occurrences(store, "weekly"))]


def test_two_run_dues_racing_compose_and_number_once(workspace_dir: Path, smtp: object) -> None:
    ws = series_workspace(workspace_dir)
    add_readers(ws, 3)
    write_feed(ws.root, ITEMS)
    barrier = threading.Barrier(2)
    reports: list[RunReport] = []

    def tick(worker: str) -> None:
        barrier.wait()
        reports.append(run_due(ws, worker=worker))

    with time_machine.travel(FRIDAY - timedelta(hours=2), tick=True):
        threads = [threading.Thread(target=tick, args=(f"host:{n}:1",)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    composed = [line for report in reports for line in report.recurring if "composed #" in line]
    assert len(composed) == 1, [r.lines() for r in reports]
    assert _states(ws) == [("composed", 1)]
    recorder: Recorder = smtp.handler  # type: ignore[attr-defined]
    assert recorder.to_readers("[TEST]") == {"editor@example.org": 1}
    assert sorted(p.name for p in ws.issues_dir.iterdir()) == ["2026-12-04-weekly"]


def test_approval_required_holds_the_send_until_approve(workspace_dir: Path, smtp: object) -> None:
    ws = series_workspace(workspace_dir, approval="required")
    readers = add_readers(ws, 3)
    write_feed(ws.root, ITEMS)
    recorder: Recorder = smtp.handler  # type: ignore[attr-defined]
    with time_machine.travel(FRIDAY, tick=True) as clock:
        report = run_due(ws)
        assert any("waits for `newsletter approve" in line for line in report.recurring)
        assert not recorder.to_readers("Brief #1")
        approve_issue(ws, ws.issues_dir / "2026-12-04-weekly")
        clock.shift(60)
        run_due(ws)
    assert set(recorder.to_readers("Brief #1")) == readers
    with pytest.raises(NewsletterError, match="not waiting for approval"):
        approve_issue(ws, ws.issues_dir / "2026-12-04-weekly")


def test_a_paused_series_and_a_skipped_time_use_no_number(workspace_dir: Path) -> None:
    ws = series_workspace(workspace_dir)
    write_feed(ws.root, ITEMS)
    with time_machine.travel(FRIDAY - timedelta(days=1), tick=False) as clock:
        assert skip_next(ws, "weekly") == FRIDAY
        (status,) = series_status(ws)
        assert status.next_at == FRIDAY + timedelta(days=7) and status.next_skipped
        assert status.would_feature == [ITEMS[0][0], ITEMS[1][0]]
        clock.move_to(FRIDAY)
        assert not run_due(ws).recurring_problems
        pause_series(ws, "weekly", True)
        clock.move_to(FRIDAY + timedelta(days=7))
        run_due(ws)
        pause_series(ws, "weekly", False)
        clock.move_to(FRIDAY + timedelta(days=14, hours=-2))
        run_due(ws)
    assert _states(ws) == [("skipped", None), ("skipped", None), ("composed", 1)]
    with open_store_for(ws) as store:
        assert "guid:bridge" in featured_keys(store)


def test_a_missed_time_is_recorded_and_never_sent_late(workspace_dir: Path) -> None:
    ws = series_workspace(workspace_dir)
    write_feed(ws.root, ITEMS)
    with time_machine.travel(FRIDAY - timedelta(hours=2), tick=True) as clock:
        run_due(ws)  # composed at review time, then nothing runs for a day
        clock.move_to(FRIDAY + timedelta(days=1))
        report = run_due(ws)
    assert any("missed" in line for line in report.recurring_problems)
    assert _states(ws) == [("missed", 1)]


def test_a_bad_series_is_named_with_its_field(workspace_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        series_workspace(workspace_dir, every="FREQ=WEEKLY;BYDAY=XY")
    assert "recurring[weekly].every" in str(info.value) and "BYDAY" in str(info.value)
    assert "\n" not in str(info.value)
