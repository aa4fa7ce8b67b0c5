"""Scheduled sends: reading times, recording, listing, cancelling, due runs, missed
windows, crash take-over, and two claimers on one SQLite file (sender rule 28,
schedule side). Time is frozen with time-machine; nothing sleeps."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from newsletter.errors import StoreError
from newsletter.schedule import (
    ScheduledSend,
    ScheduleError,
    cancel_scheduled,
    describe,
    list_scheduled,
    parse_when,
    run_due,
    schedule_send,
)
from newsletter.store import Consent, Store, open_store, open_store_for
from newsletter.store.schedules import claim_schedule, get_schedule
from newsletter.workspace import Workspace

BERLIN = ZoneInfo("Europe/Berlin")
Clock = time_machine.Traveller
# "now" for every test: a Friday morning, well before the scheduled times
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


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


@pytest.fixture
def clock() -> Iterator[Clock]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def issue_dir(workspace: Workspace) -> Path:
    folder = workspace.issues_dir / "2026-12-01-weekly-brief"
    folder.mkdir(parents=True)
    issue = {
        "subject": "Weekly brief",
        "date": "2026-12-01",
        "teasers": [
            {
                "title": "Harbour reopens",
                "summary": "The harbour reopened.",
                "url": "https://www.example.org/a",
            }
        ],
    }
    (folder / "issue.json").write_text(json.dumps(issue), encoding="utf-8")
    return folder


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    with open_store_for(workspace) as opened:
        opened.add("ann@example.org", list_name="main", consent=Consent(source="cli"))
        yield opened


# --- parse_when ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-12-01 08:00 Europe/Berlin", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        ("2026-07-01 08:00 Europe/Berlin", datetime(2026, 7, 1, 6, 0, tzinfo=UTC)),
        ("2026-12-01T08:00:00+01:00", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        ("2026-12-01T07:00Z", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        ("2026-12-01 08:00 America/New_York", datetime(2026, 12, 1, 13, 0, tzinfo=UTC)),
        ("2026-12-01 08:00 UTC", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        ("2026-12-01 08:00", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),  # default zone
        ("  2026-12-01T08:00  ", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        # clocks go back: 02:30 happens twice; the first one is meant
        ("2026-10-25 02:30 Europe/Berlin", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_parse_when_reads_what_people_write(text: str, utc: datetime) -> None:
    parsed = parse_when(text, "Europe/Berlin")
    assert parsed.tzinfo is not None
    # (== between zones is always False for a repeated wall time, so compare in UTC)
    assert parsed.astimezone(UTC) == utc


FORMS = "accepted forms:"


@pytest.mark.parametrize(
    ("text", "problem", "advice"),
    [
        ("", "no send time", FORMS),
        ("2026-12-01", "no time of day", FORMS),
        ("next tuesday", "cannot read 'next tuesday' as a send time", FORMS),
        ("tomorrow", "tomorrow needs a time of day", FORMS),
        ("tomorrow 25:00", "is not a time of day", FORMS),
        ("today 13pm", "13 is not an hour of am/pm", FORMS),
        ("+2 weeks", "cannot read", FORMS),
        ("2026-13-01 08:00", "cannot read", FORMS),
        ("2026-12-01 08:00 Mars/Olympus_Mons", "unknown time zone", "IANA name"),
        ("2026-12-01T08:00+01:00 Europe/Berlin", "both an offset and a time zone", "only one"),
        ("2026-03-29 02:30 Europe/Berlin", "does not exist in Europe/Berlin", "daylight-saving"),
    ],
)
def test_parse_when_refuses_what_it_cannot_read_and_says_how(
    text: str, problem: str, advice: str
) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_when(text, "Europe/Berlin")
    assert problem in str(info.value)
    assert advice in str(info.value.hint)


def test_a_time_it_cannot_read_lists_every_accepted_form() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_when("tomorrow at nine", "Europe/Berlin")
    hint = str(info.value.hint)
    for form in ("YYYY-MM-DD HH:MM", "Area/City", "+01:00", "today HH:MM", "tomorrow HH:MM"):
        assert form in hint
    assert "+2h" in hint and "9am" in hint


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("tomorrow 9am", datetime(2026, 11, 28, 8, 0, tzinfo=UTC)),
        ("tomorrow 09:00", datetime(2026, 11, 28, 8, 0, tzinfo=UTC)),
        ("Tomorrow 9:30 PM", datetime(2026, 11, 28, 20, 30, tzinfo=UTC)),
        ("today 12am UTC", datetime(2026, 11, 27, 0, 0, tzinfo=UTC)),
        ("today 18:00 America/New_York", datetime(2026, 11, 27, 23, 0, tzinfo=UTC)),
        ("+90m", NOW + timedelta(minutes=90)),
        ("+2h", NOW + timedelta(hours=2)),
        ("+1d", NOW + timedelta(days=1)),
    ],
)
def test_parse_when_reads_days_and_offsets_from_now(
    text: str, utc: datetime, clock: object
) -> None:
    assert parse_when(text, "Europe/Berlin").astimezone(UTC) == utc


def test_tomorrow_is_the_next_day_where_the_zone_is(clock: Clock) -> None:
    """At 23:30 UTC it is already the next day in Berlin: tomorrow is the day after."""
    clock.move_to(datetime(2026, 11, 27, 23, 30, tzinfo=UTC))
    assert parse_when("tomorrow 08:00", "Europe/Berlin") == datetime(
        2026, 11, 29, 8, 0, tzinfo=BERLIN
    )


# --- schedule, list, cancel ----------------------------------------------------------------


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
        runner = Recorder()
        assert not run_due(workspace, runner=runner).acted
        assert runner.calls == []


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


# --- due runs -----------------------------------------------------------------------------


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
