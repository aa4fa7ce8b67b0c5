"""Recording, listing and cancelling scheduled sends. Time is frozen with time-machine."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from newsletter.errors import ScheduleError, StoreError
from newsletter.schedule.due import run_due
from newsletter.schedule.scheduled import (
    cancel_scheduled,
    describe,
    list_scheduled,
    schedule_send,
)
from newsletter.store import Store
from newsletter.store.schedules import ScheduledSend
from newsletter.workspace import Workspace


def test_schedule_list_and_cancel(
    workspace: Workspace, store: Store, issue_dir: Path, clock: object
) -> None:
    scheduled = schedule_send(workspace, issue_dir, "2026-12-01 08:00 Europe/Berlin")
    assert scheduled.state == "scheduled"
    assert scheduled.due_at == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert scheduled.issue_dir == "issues/2026-12-01-weekly-brief"  # portable with the workspace
    assert scheduled.list_name == "main" and scheduled.zone == "Europe/Berlin"
    [listed] = list_scheduled(workspace)
    assert listed.id == scheduled.id
    line = describe(listed)
    assert line.startswith(f"#{scheduled.id}\tscheduled\t2026-12-01 08:00 Europe/Berlin\t")
    assert "issues/2026-12-01-weekly-brief" in line and "list main" in line

    cancelled = cancel_scheduled(workspace, scheduled.id)
    assert cancelled.state == "cancelled"
    assert list_scheduled(workspace, include_finished=False) == []
    with pytest.raises(StoreError, match="is cancelled, not waiting"):
        cancel_scheduled(workspace, scheduled.id)
    with pytest.raises(StoreError, match="no scheduled send #999"):
        cancel_scheduled(workspace, 999)
    # a cancelled send never runs
    with time_machine.travel(datetime(2026, 12, 1, 7, 1, tzinfo=UTC), tick=False):

        def never(ws: Workspace, scheduled: ScheduledSend) -> str:
            raise AssertionError(f"cancelled send #{scheduled.id} ran")

        assert not run_due(workspace, runner=never).acted


def test_scheduling_refuses_the_past_a_second_schedule_unknown_lists_and_missing_issues(
    workspace: Workspace, store: Store, issue_dir: Path, clock: object
) -> None:
    with pytest.raises(ScheduleError, match="in the past"):
        schedule_send(workspace, issue_dir, "2026-11-27 08:00 Europe/Berlin")
    with pytest.raises(ScheduleError, match="no list named 'weekly'"):
        schedule_send(workspace, issue_dir, "2026-12-01 08:00", list_name="weekly")
    with pytest.raises(ScheduleError, match="no such issue folder"):
        schedule_send(workspace, issue_dir.parent / "nope", "2026-12-01 08:00")
    first = schedule_send(workspace, issue_dir, "2026-12-01 08:00")
    with pytest.raises(StoreError, match=f"schedule #{first.id}"):
        schedule_send(workspace, issue_dir, "2026-12-02 08:00")
    assert len(list_scheduled(workspace)) == 1


def test_a_relative_issue_path_is_read_from_the_current_folder(
    workspace: Workspace,
    store: Store,
    issue_dir: Path,
    clock: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(workspace.issues_dir)
    scheduled = schedule_send(workspace, Path(issue_dir.name), "2026-12-01 08:00")
    assert scheduled.issue_dir == "issues/2026-12-01-weekly-brief"
