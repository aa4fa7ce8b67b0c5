"""A weekly series for five simulated weeks with a frozen clock: new feed items make #1,
#2, #3 with only the new items, a week with nothing new is skipped and uses no number,
09:00 stays 09:00 local across the end of summer time, a second run-due in the same
minute sends nothing more, and a run-due killed mid-send (kill -9) is completed by the
next with duplicates no more than the connections."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine
from series_fixtures import Recorder, add_readers, series_workspace, smtp, write_feed

from newsletter.schedule.due import run_due
from newsletter.store import open_store_for
from newsletter.store.occurrences import series_occurrences
from newsletter.workspace import Workspace

__all__ = ["smtp"]  # the fixture, used by name

# Fridays 09:00 in Berlin: 07:00 UTC in summer time, 08:00 UTC after 25 October 2026
FRIDAYS = [
    datetime(2026, 10, 9, 7, 0, tzinfo=UTC),
    datetime(2026, 10, 16, 7, 0, tzinfo=UTC),
    datetime(2026, 10, 23, 7, 0, tzinfo=UTC),
    datetime(2026, 10, 30, 8, 0, tzinfo=UTC),
    datetime(2026, 11, 6, 8, 0, tzinfo=UTC),
]
ITEMS = {
    "a": ("Harbour crane gets a second life", "a", "Wed, 07 Oct 2026 09:00:00 +0000"),
    "b": ("Orchard school plants its hundredth tree", "b", "Thu, 08 Oct 2026 09:00:00 +0000"),
    "c": ("Ferry timetable adds a night crossing", "c", "Wed, 14 Oct 2026 09:00:00 +0000"),
    "d": ("Library opens a repair corner", "d", "Tue, 27 Oct 2026 09:00:00 +0000"),
    "e": ("Tram line reaches the old brewery", "e", "Thu, 29 Oct 2026 09:00:00 +0000"),
    "f": ("Market hall reopens after its new roof", "f", "Wed, 04 Nov 2026 09:00:00 +0000"),
}


def _feed(ws: Workspace, *keys: str) -> None:
    write_feed(ws.root, [ITEMS[key] for key in reversed(keys)])


def _titles(ws: Workspace, folder: str) -> list[str]:
    issue = json.loads((ws.issues_dir / folder / "issue.json").read_text(encoding="utf-8"))
    return [teaser["title"] for teaser in issue["teasers"]]


def _states(ws: Workspace) -> list[tuple[str, int | None]]:
    with open_store_for(ws) as store:
        found = series_occurrences(store, "weekly")
    return [(item.state, item.number) for item in reversed(found)]


def _week(
    ws: Workspace, recorder: Recorder, friday: datetime, clock: time_machine.Traveller
) -> None:
    """Run run-due at the review time, an hour before the send, and at the send time."""
    clock.move_to(friday - timedelta(hours=2))
    run_due(ws)
    clock.move_to(friday - timedelta(hours=1))
    assert not run_due(ws).recurring  # nothing to do between review and send
    clock.move_to(friday)
    run_due(ws)


def test_five_weeks_of_a_weekly_series(workspace_dir: Path, smtp: object) -> None:
    ws = series_workspace(workspace_dir)
    readers = add_readers(ws, 12)
    recorder: Recorder = smtp.handler  # type: ignore[attr-defined]
    with time_machine.travel(FRIDAYS[0] - timedelta(days=1), tick=True) as clock:
        # week 1: two items
        _feed(ws, "a", "b")
        _week(ws, recorder, FRIDAYS[0], clock)
        assert _titles(ws, "2026-10-09-weekly") == [ITEMS["b"][0], ITEMS["a"][0]]
        assert recorder.to_readers("Brief #1:") == Counter(dict.fromkeys(readers, 1))
        assert recorder.to_readers("[TEST] Brief #1:") == Counter({"editor@example.org": 1})
        # the same minute again: nothing more goes out
        before = len(recorder.messages)
        again = run_due(ws)
        assert not again.recurring and len(recorder.messages) == before

        # week 2: one new item beside the two old ones
        _feed(ws, "a", "b", "c")
        _week(ws, recorder, FRIDAYS[1], clock)
        assert _titles(ws, "2026-10-16-weekly") == [ITEMS["c"][0]]
        assert recorder.to_readers("Brief #2:") == Counter(dict.fromkeys(readers, 1))

        # week 3: nothing new: skipped, no number, no folder, no mail
        before = len(recorder.messages)
        _week(ws, recorder, FRIDAYS[2], clock)
        assert not (ws.issues_dir / "2026-10-23-weekly").exists()
        assert len(recorder.messages) == before

        # week 4, after the clocks went back: composed at 07:00 local, sent at 09:00 local
        _feed(ws, "a", "b", "c", "d", "e")
        clock.move_to(FRIDAYS[3] - timedelta(hours=3))  # 07:00 UTC: 09:00 under summer time
        run_due(ws)
        assert not (ws.issues_dir / "2026-10-30-weekly").exists()
        _week(ws, recorder, FRIDAYS[3], clock)
        assert _titles(ws, "2026-10-30-weekly") == [ITEMS["e"][0], ITEMS["d"][0]]
        assert recorder.to_readers("Brief #3:") == Counter(dict.fromkeys(readers, 1))
        assert _states(ws) == [("sent", 1), ("sent", 2), ("skipped", None), ("sent", 3)]

        # week 5: composed in this process; the send is killed part-way (kill -9)
        _feed(ws, "a", "b", "c", "d", "e", "f")
        clock.move_to(FRIDAYS[4] - timedelta(hours=2))
        run_due(ws)
        recorder.hold_after = len(recorder.messages) + 3
        killed = _kill_mid_send(ws, recorder, FRIDAYS[4])
        assert 0 < sum(recorder.to_readers("Brief #4:").values()) < len(readers)
        # the next run-due, a minute later, finishes the issue
        clock.move_to(FRIDAYS[4] + timedelta(minutes=1))
        report = run_due(ws)
        assert any("sent #4" in line for line in report.recurring), report.lines()
    got = recorder.to_readers("Brief #4:")
    assert set(got) == readers
    duplicates = sum(got.values()) - len(readers)
    assert duplicates <= ws.config.send.connections, (duplicates, killed)
    assert _titles(ws, "2026-11-06-weekly") == [ITEMS["f"][0]]
    assert _states(ws)[-1] == ("sent", 4)


def _kill_mid_send(ws: Workspace, recorder: Recorder, at: datetime) -> int:
    """Run ``newsletter run-due`` in a child process at ``at`` (frozen), wait until the
    server holds a message, kill the child with SIGKILL -> how many messages had arrived."""
    import newsletter

    script = textwrap.dedent(
        f"""
        import sys, time_machine
        from datetime import datetime
        from pathlib import Path
        from newsletter.schedule.due import run_due
        from newsletter.workspace import load_workspace
        with time_machine.travel(datetime.fromisoformat({at.isoformat()!r}), tick=True):
            run_due(load_workspace(Path(sys.argv[1])))
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(newsletter.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(ws.root)], env=env)
    try:
        # waits on the server's event; a child that ended early fails at once
        while not recorder.holding.wait(0.5):
            assert child.poll() is None, "run-due ended before the held message"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    arrived = len(recorder.messages)
    recorder.hold_after = None
    recorder.release.set()
    return arrived
