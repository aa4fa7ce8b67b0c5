"""Two ``run-due`` processes started together on the same due occurrence, on SQLite and
on PostgreSQL: one composes, numbers and sends it, the other finds it taken and leaves
it; every reader gets the issue once.

The winner is held inside its read of the feed until the loser has ended, so the two
really overlap whichever of them wins."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from crash_fixtures import (
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

__all__ = ["gate", "smtp"]  # fixtures, used by name

FRIDAY = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
ITEMS = [
    ("Bridge repairs finish early", "bridge", "Thu, 03 Dec 2026 09:00:00 +0000"),
    ("Choir records in the old mine", "choir", "Wed, 02 Dec 2026 09:00:00 +0000"),
]


def _first_to_end(children: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    """Wait until one of ``children`` has ended -> that one."""
    ended: list[subprocess.Popen[str]] = []
    one_ended = threading.Event()

    def watch(child: subprocess.Popen[str]) -> None:
        child.wait()
        ended.append(child)
        one_ended.set()

    for child in children:
        threading.Thread(target=watch, args=(child,), daemon=True).start()
    assert one_ended.wait(120), "neither run-due ended"
    return ended[0]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_run_due_processes_compose_number_and_send_once(
    database: str,
    workspace_dir: Path,
    smtp: object,
    gate: Gate,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if database == "postgresql":
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", request.getfixturevalue("pg_url"))
    ws = url_series_workspace(workspace_dir, gate, review_before="")
    ws.secret_keys()  # made here, not by two racers at once
    readers = add_readers(ws, 6)
    recorder: Recorder = smtp.handler  # type: ignore[attr-defined]
    gate.write_feed(ITEMS)
    gate.hold = {FEED_PATH}
    racers = [run_due_child(ws, FRIDAY, wait=True) for _ in range(2)]
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()

    assert gate.arrived.wait(120), "no run-due read the feed"
    loser = _first_to_end(racers)
    (winner,) = [racer for racer in racers if racer is not loser]
    assert winner.poll() is None  # still held inside its compose
    gate.release.set()
    won_out, won_err = winner.communicate(timeout=120)
    lost_out, lost_err = loser.communicate()

    assert winner.returncode == 0, won_err
    assert "composed #1" in won_out and "sent #1" in won_out
    assert loser.returncode == 0, lost_err
    assert "#1" not in lost_out
    assert occurrence_states(ws) == [("sent", 1)]
    assert issue_folders(ws) == ["2026-12-04-weekly"]
    assert campaign_count(ws) == 1
    assert gate.asked.count(FEED_PATH) == 1
    assert recorder.to_readers("Brief #1:") == Counter(dict.fromkeys(readers, 1))
