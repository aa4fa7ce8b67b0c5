"""kill -9 of a ``run-due`` child process at each step of an occurrence before its send,
then ``run-due`` again: the occurrence is composed once, numbered once and sent once.

The series reads a feed URL from a loopback server that holds the request (or the
chat API's, or the SMTP server holds the review copy) until the child is killed."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from crash_fixtures import (
    CHAT_PATH,
    FEED_PATH,
    Gate,
    campaign_count,
    gate,
    issue_folders,
    occurrence_states,
    run_due_child,
    url_series_workspace,
)
from series_fixtures import Recorder, add_readers, smtp

from newsletter.compose.build import compose_issue
from newsletter.errors import SourceError
from newsletter.schedule.due import run_due
from newsletter.workspace import Workspace

__all__ = ["gate", "smtp"]  # fixtures, used by name

FRIDAY = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
ITEMS = [
    ("Bridge repairs finish early", "bridge", "Thu, 03 Dec 2026 09:00:00 +0000"),
    ("Choir records in the old mine", "choir", "Wed, 02 Dec 2026 09:00:00 +0000"),
]
NEXT = ("Night market returns to the quay", "market", "Wed, 09 Dec 2026 09:00:00 +0000")


def kill_when(child: subprocess.Popen[str], held: threading.Event) -> None:
    """Wait until the server holds the child's request, then kill the child (SIGKILL)."""
    try:
        while not held.wait(0.5):
            if child.poll() is not None:
                pytest.fail(f"run-due ended before it was held: {child.communicate()}")
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()


def _let_go(gate: Gate) -> None:
    gate.hold.clear()
    gate.release.set()


def _titles(ws: Workspace) -> list[str]:
    issue = json.loads((ws.issues_dir / "2026-12-04-weekly" / "issue.json").read_text("utf-8"))
    return [teaser["title"] for teaser in issue["teasers"]]


def _next_week_is_number_two(ws: Workspace, gate: Gate, recorder: Recorder) -> None:
    gate.write_feed([NEXT, *ITEMS])
    with time_machine.travel(FRIDAY + timedelta(days=7), tick=True):
        run_due(ws)
    assert occurrence_states(ws) == [("sent", 1), ("sent", 2)]
    assert sum(recorder.to_readers("Brief #2:").values()) == len(recorder.to_readers("Brief #1:"))


def test_killed_while_reading_the_source(workspace_dir: Path, smtp: object, gate: Gate) -> None:
    ws = url_series_workspace(workspace_dir, gate, review_before="")
    readers = add_readers(ws, 5)
    recorder: Recorder = smtp.handler  # type: ignore[attr-defined]
    gate.write_feed(ITEMS)
    gate.hold = {FEED_PATH}
    kill_when(run_due_child(ws, FRIDAY), gate.arrived)
    _let_go(gate)
    # killed before it was numbered: nothing written, no number used
    assert occurrence_states(ws) == [("pending", None)]
    assert issue_folders(ws) == []

    with time_machine.travel(FRIDAY + timedelta(minutes=1), tick=True):
        report = run_due(ws)
    assert any("sent #1" in line for line in report.recurring), report.lines()
    assert issue_folders(ws) == ["2026-12-04-weekly"]
    assert campaign_count(ws) == 1
    assert recorder.to_readers("Brief #1:") == Counter(dict.fromkeys(readers, 1))
    _next_week_is_number_two(ws, gate, recorder)


def test_killed_while_composing_after_numbering(
    workspace_dir: Path, smtp: object, gate: Gate
) -> None:
    ws = url_series_workspace(workspace_dir, gate, llm=True)
    readers = add_readers(ws, 4)
    recorder: Recorder = smtp.handler  # type: ignore[attr-defined]
    gate.write_feed(ITEMS)
    gate.hold = {CHAT_PATH}  # the teaser writer: asked inside compose, after numbering
    kill_when(run_due_child(ws, FRIDAY - timedelta(hours=2)), gate.arrived)
    _let_go(gate)
    assert occurrence_states(ws) == [("composing", 1)]
    assert issue_folders(ws) == []

    # a hand compose of the same feed meanwhile: the numbered occurrence's articles are
    # taken, so it cannot feature them and leave the occurrence with nothing
    with pytest.raises(SourceError, match="2 featured in an earlier issue"):
        compose_issue(
            ws,
            [gate.url + FEED_PATH],
            subject=None,
            intro="",
            preheader="",
            out=None,
            skip_bad=False,
        )
    gate.write_feed([NEXT, *ITEMS])  # a newer item appears: #1 keeps what it selected

    with time_machine.travel(FRIDAY - timedelta(hours=1, minutes=50), tick=True):
        report = run_due(ws)
    assert any("composed #1" in line for line in report.recurring), report.lines()
    assert _titles(ws) == [ITEMS[0][0], ITEMS[1][0]]
    with time_machine.travel(FRIDAY, tick=True):
        run_due(ws)
    assert occurrence_states(ws) == [("sent", 1)]
    assert issue_folders(ws) == ["2026-12-04-weekly"]
    assert campaign_count(ws) == 1
    assert recorder.to_readers("Brief #1:") == Counter(dict.fromkeys(readers, 1))
    assert recorder.to_readers("[TEST] Brief #1:") == Counter({"editor@example.org": 1})


def test_killed_while_mailing_the_review_copy(
    workspace_dir: Path, smtp: object, gate: Gate
) -> None:
    ws = url_series_workspace(workspace_dir, gate)
    readers = add_readers(ws, 4)
    recorder: Recorder = smtp.handler  # type: ignore[attr-defined]
    gate.write_feed(ITEMS)
    recorder.hold_after = 0  # the review copy, the first message of the occurrence
    kill_when(run_due_child(ws, FRIDAY - timedelta(hours=2)), recorder.holding)
    recorder.hold_after = None
    recorder.release.set()
    # the issue was written before the kill; the occurrence still says composing
    assert occurrence_states(ws) == [("composing", 1)]
    assert issue_folders(ws) == ["2026-12-04-weekly"]

    with time_machine.travel(FRIDAY - timedelta(hours=1, minutes=55), tick=True):
        report = run_due(ws)
    assert any("composed #1" in line for line in report.recurring), report.lines()
    with time_machine.travel(FRIDAY, tick=True):
        run_due(ws)
    assert occurrence_states(ws) == [("sent", 1)]
    assert issue_folders(ws) == ["2026-12-04-weekly"]
    assert campaign_count(ws) == 1
    assert recorder.to_readers("Brief #1:") == Counter(dict.fromkeys(readers, 1))
    # the review copy is mailed again by the run that finishes the step: the message the
    # killed run had handed over may arrive too, so the editor sees it once or twice
    assert 1 <= recorder.to_readers("[TEST] Brief #1:")["editor@example.org"] <= 2
    assert gate.asked.count(FEED_PATH) == 1  # one selection, read once


def test_a_numbered_occurrence_missed_before_its_issue_was_written_frees_its_articles(
    workspace_dir: Path, smtp: object, gate: Gate
) -> None:
    ws = url_series_workspace(workspace_dir, gate, llm=True)
    gate.write_feed(ITEMS)
    gate.hold = {CHAT_PATH}
    kill_when(run_due_child(ws, FRIDAY - timedelta(hours=2)), gate.arrived)
    _let_go(gate)
    with time_machine.travel(FRIDAY + timedelta(days=1), tick=True):
        report = run_due(ws)
        assert any("missed" in line for line in report.recurring_problems), report.lines()
        assert occurrence_states(ws) == [("missed", 1)]
        # nobody got those articles: a later issue may feature them
        result = compose_issue(
            ws,
            [gate.url + FEED_PATH],
            subject=None,
            intro="",
            preheader="",
            out=None,
            skip_bad=False,
        )
    assert [teaser.title for teaser in result.issue.teasers] == [ITEMS[0][0], ITEMS[1][0]]
