"""Due runs: missed windows, failures, crash take-over, two claimers on one SQLite file,
forgotten sign-ups. Time is frozen with time-machine; nothing sleeps."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from newsletter.schedule.due import run_due
from newsletter.schedule.scheduled import describe, schedule_send
from newsletter.store import Consent, Store, open_store, open_store_for
from newsletter.store.schedules import ScheduledSend, claim_schedule, get_schedule
from newsletter.workspace import Workspace

Clock = time_machine.Traveller


class Recorder:
    """A SendRunner that remembers what it was asked to send."""

    def __init__(self, result: str = "sent to 2 recipients") -> None:
        self.calls: list[ScheduledSend] = []
        self.result = result
        self.lock = threading.Lock()

    def __call__(self, ws: Workspace, scheduled: ScheduledSend) -> str:
        with self.lock:
            self.calls.append(scheduled)
        return self.result


def test_a_send_starts_once_when_due_and_not_before(
    workspace: Workspace, store: Store, issue_dir: Path, clock: Clock
) -> None:
    scheduled = schedule_send(workspace, issue_dir, "2026-12-01 08:00 Europe/Berlin")
    runner = Recorder()
    clock.move_to(datetime(2026, 12, 1, 6, 59, 59, tzinfo=UTC))
    assert not run_due(workspace, runner=runner).acted
    clock.move_to(datetime(2026, 12, 1, 7, 0, 0, tzinfo=UTC))
    report = run_due(workspace, runner=runner)
    assert report.done == [(scheduled.id, "sent to 2 recipients")]
    assert [call.id for call in runner.calls] == [scheduled.id]
    assert runner.calls[0].state == "running"
    # the next tick does not send it again
    clock.move_to(datetime(2026, 12, 1, 7, 0, 30, tzinfo=UTC))
    assert not run_due(workspace, runner=runner).acted
    assert len(runner.calls) == 1
    stored = get_schedule(store, scheduled.id)
    assert stored is not None and stored.state == "done"
    assert stored.note == "sent to 2 recipients" and stored.attempts == 1
    assert stored.finished_at == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def test_a_send_missed_by_less_than_the_window_starts_at_the_next_start_up(
    workspace: Workspace, store: Store, issue_dir: Path, clock: Clock
) -> None:
    scheduled = schedule_send(workspace, issue_dir, "2026-12-01 08:00 Europe/Berlin")
    clock.move_to(datetime(2026, 12, 1, 12, 59, tzinfo=UTC))  # 5 h 59 min late
    runner = Recorder()
    assert run_due(workspace, runner=runner).done == [(scheduled.id, "sent to 2 recipients")]


def test_a_send_missed_by_more_than_the_window_is_marked_missed_and_never_sent(
    workspace: Workspace,
    store: Store,
    issue_dir: Path,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduled = schedule_send(workspace, issue_dir, "2026-12-01 08:00 Europe/Berlin")
    clock.move_to(datetime(2026, 12, 2, 7, 0, tzinfo=UTC))  # a day late
    runner = Recorder()
    report = run_due(workspace, runner=runner)
    assert runner.calls == []
    [(missed_id, note)] = report.missed
    assert missed_id == scheduled.id and "24.0 h late" in note and "within 6 h" in note
    assert "missed" in caplog.text
    stored = get_schedule(store, scheduled.id)
    assert stored is not None and stored.state == "missed"
    assert "missed" in describe(stored)
    # and it stays missed: later ticks never pick it up
    assert not run_due(workspace, runner=runner).acted


def test_the_missed_window_is_configurable(
    workspace_dir: Path,
    issue_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
) -> None:
    config = workspace_dir / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    assert "\n[serve]\n" in text
    config.write_text(  # into [serve], wherever it sits in the file
        text.replace("\n[serve]\n", "\n[serve]\nmissed_window_hours = 1\n", 1), encoding="utf-8"
    )
    from newsletter.workspace import load_workspace

    ws = load_workspace(workspace_dir)
    with open_store_for(ws) as store:
        store.add("ann@example.org", list_name="main", consent=Consent(source="cli"))
    scheduled = schedule_send(ws, issue_dir, "2026-12-01 08:00 Europe/Berlin")
    clock.move_to(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))  # 1.5 h late
    assert run_due(ws, runner=Recorder()).missed[0][0] == scheduled.id


def test_a_failing_send_is_recorded_failed_with_its_reason(
    workspace: Workspace, store: Store, issue_dir: Path, clock: Clock
) -> None:
    from newsletter.errors import DeliveryError

    def broken(ws: Workspace, scheduled: ScheduledSend) -> str:
        raise DeliveryError("cannot connect to smtp://mail.example.org:587")

    scheduled = schedule_send(workspace, issue_dir, "2026-12-01 08:00 Europe/Berlin")
    clock.move_to(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    report = run_due(workspace, runner=broken)
    assert report.failed == [(scheduled.id, "cannot connect to smtp://mail.example.org:587")]
    stored = get_schedule(store, scheduled.id)
    assert stored is not None and stored.state == "failed"


def test_a_send_whose_process_died_is_taken_over_and_resumed(
    workspace: Workspace, store: Store, issue_dir: Path, clock: Clock
) -> None:
    scheduled = schedule_send(workspace, issue_dir, "2026-12-01 08:00 Europe/Berlin")
    clock.move_to(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    # a process claims it, then dies without finishing or beating again
    dead = claim_schedule(store, scheduled, "crashed-host:1:1", datetime.now(UTC))
    assert dead is not None and dead.state == "running"
    runner = Recorder()
    clock.move_to(datetime(2026, 12, 1, 7, 4, tzinfo=UTC))  # heartbeat 4 min old: alive
    assert not run_due(workspace, runner=runner).acted
    clock.move_to(datetime(2026, 12, 1, 7, 6, tzinfo=UTC))  # 6 min: it is gone
    report = run_due(workspace, runner=runner, worker="rescuer:2:2")
    assert report.done == [(scheduled.id, "sent to 2 recipients")]
    stored = get_schedule(store, scheduled.id)
    assert stored is not None
    assert stored.state == "done" and stored.attempts == 2 and stored.claimed_by == "rescuer:2:2"


def test_a_dead_send_found_after_the_window_is_marked_missed(
    workspace: Workspace, store: Store, issue_dir: Path, clock: Clock
) -> None:
    scheduled = schedule_send(workspace, issue_dir, "2026-12-01 08:00 Europe/Berlin")
    clock.move_to(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    assert claim_schedule(store, scheduled, "crashed-host:1:1", datetime.now(UTC))
    clock.move_to(datetime(2026, 12, 2, 7, 0, tzinfo=UTC))
    runner = Recorder()
    report = run_due(workspace, runner=runner)
    assert runner.calls == []
    assert "interrupted" in report.missed[0][1]


def test_two_schedulers_on_one_database_never_both_start_a_send(
    workspace: Workspace, store: Store, issue_dir: Path, clock: Clock
) -> None:
    schedule_send(workspace, issue_dir, "2026-12-01 08:00 Europe/Berlin")
    second_issue = issue_dir.parent / "2026-12-01-second"
    second_issue.mkdir()
    (second_issue / "issue.json").write_text(
        (issue_dir / "issue.json").read_text(encoding="utf-8"), encoding="utf-8"
    )
    schedule_send(workspace, second_issue, "2026-12-01 08:00 Europe/Berlin")
    clock.move_to(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    runner = Recorder()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def scheduler(number: int) -> None:
        # each "process" has its own engine and connections on the same SQLite file
        with open_store(workspace.database_url) as own:
            start.wait()
            try:
                run_due(workspace, runner=runner, store=own, worker=f"serve-{number}")
            except BaseException as exc:  # reported below; a thread cannot raise into pytest
                errors.append(exc)

    for _ in range(5):  # several rounds make a lucky interleaving unlikely to hide a race
        threads = [threading.Thread(target=scheduler, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    started = sorted(call.id for call in runner.calls)
    assert started == sorted({call.id for call in runner.calls}) and len(started) == 2


def test_a_tick_forgets_sign_ups_nobody_confirmed_in_time(
    workspace: Workspace, store: Store, clock: Clock
) -> None:
    store.add_pending("late@example.org", list_name="main", consent=Consent(source="web"))
    clock.shift(timedelta(hours=workspace.config.serve.pending_expiry_hours - 1))
    store.add_pending("recent@example.org", list_name="main", consent=Consent(source="web"))
    assert run_due(workspace, runner=Recorder(), expire=False).forgotten == 0
    clock.shift(timedelta(hours=2))
    report = run_due(workspace, runner=Recorder())
    assert report.forgotten == 1 and report.lines() == ["forgot 1 unconfirmed sign-ups"]
    assert store.get_by_email("late@example.org") is None
    assert store.get_by_email("recent@example.org") is not None
