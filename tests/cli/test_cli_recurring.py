"""CLI wiring of ``recurring list | show | pause | resume | skip``, ``approve`` and
``compose --since / --limit / --allow-repeats``, through the real entry point (one-line
errors, exit codes). What the verbs do is tested on the core in tests/recurring/."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from newsletter.cli import main
from newsletter.schedule.due import run_due
from newsletter.store import open_store_for
from newsletter.store.occurrences import series_occurrences
from newsletter.workspace import load_workspace
from recurring.series_fixtures import series_workspace, write_feed

THURSDAY = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
FRIDAY = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
ITEMS = [
    ("Bridge repairs finish early", "bridge", "Thu, 03 Dec 2026 09:00:00 +0000"),
    ("Choir records in the old mine", "choir", "Mon, 30 Nov 2026 09:00:00 +0000"),
    ("Tram depot gets solar roof", "tram", "Fri, 20 Nov 2026 09:00:00 +0000"),
]


class Cli:
    """Runs the real entry point (``newsletter.cli.main``) in this process."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch):
        self.root, self.capsys, self.mp = root, capsys, mp

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """-> (exit code, stdout, stderr)."""
        self.mp.setattr(sys, "argv", ["newsletter", "-w", str(self.root), *args])
        with pytest.raises(SystemExit) as info:
            main()
        out = self.capsys.readouterr()
        return int(info.value.code or 0), out.out, out.err


@pytest.fixture
def cli(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The entry point, run inside the workspace (paths are relative to it), whose
    feeds/wire.xml holds ITEMS."""
    write_feed(workspace_dir, ITEMS)
    monkeypatch.chdir(workspace_dir)
    return Cli(workspace_dir, capsys, monkeypatch)


def _states(root: Path) -> list[tuple[str, int | None]]:
    with open_store_for(load_workspace(root)) as store:
        return [(o.state, o.number) for o in reversed(series_occurrences(store, "weekly"))]


def test_list_shows_the_next_time_local_and_utc_and_what_it_would_feature(
    workspace_dir: Path, cli: Cli
) -> None:
    series_workspace(workspace_dir)
    with time_machine.travel(THURSDAY, tick=False):
        code, out, _ = cli("recurring", "list")
    assert code == 0
    assert "weekly  (every FREQ=WEEKLY;BYDAY=FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0" in out
    assert "next: Fri 2026-12-04 09:00 CET (2026-12-04 08:00 UTC)" in out
    assert "would feature now: 3 new articles" in out
    assert out.index(ITEMS[0][0]) < out.index(ITEMS[1][0]) < out.index(ITEMS[2][0])


def test_show_names_the_settings_and_the_occurrences(workspace_dir: Path, cli: Cli) -> None:
    ws = series_workspace(workspace_dir)
    with time_machine.travel(FRIDAY - timedelta(hours=2), tick=False):
        run_due(ws)
        code, out, _ = cli("recurring", "show", "weekly")
    assert code == 0
    assert "name: weekly" in out and "review_before: 2h" in out and "paused: no" in out
    assert "next: Fri 2026-12-04 09:00 CET (2026-12-04 08:00 UTC)" in out
    assert "would feature now: nothing new" in out
    assert "composed    #1  composed #1 into issues/2026-12-04-weekly" in out


def test_pause_resume_and_skip_move_the_next_occurrence(workspace_dir: Path, cli: Cli) -> None:
    ws = series_workspace(workspace_dir)
    with time_machine.travel(THURSDAY, tick=False) as clock:
        assert cli("recurring", "pause", "weekly")[:2] == (0, "paused weekly\n")
        assert cli("recurring", "pause", "weekly")[1] == "weekly was paused already\n"
        assert "(paused, to list main)" in cli("recurring", "list")[1]
        clock.move_to(FRIDAY - timedelta(hours=2))
        run_due(ws)  # the paused series' time passes as skipped
        assert not (ws.issues_dir / "2026-12-04-weekly").exists()
        assert cli("recurring", "resume", "weekly")[1] == "resumed weekly\n"
        assert cli("recurring", "resume", "weekly")[1] == "weekly was not paused\n"
        code, out, _ = cli("recurring", "skip", "weekly")
        assert (code, out) == (0, "skipped weekly at 2026-12-11 08:00 UTC\n")
        out = cli("recurring", "list")[1]
        assert "next: Fri 2026-12-18 09:00 CET (2026-12-18 08:00 UTC)" in out
        assert "(the time before it is skipped)" in out
        clock.move_to(datetime(2026, 12, 11, 8, 0, tzinfo=UTC))
        run_due(ws)
    assert _states(workspace_dir) == [("skipped", None), ("skipped", None)]
    assert not (ws.issues_dir / "2026-12-11-weekly").exists()


def test_approve_lets_a_held_issue_go_and_names_what_is_no_occurrence(
    workspace_dir: Path, cli: Cli
) -> None:
    ws = series_workspace(workspace_dir, approval="required")
    with time_machine.travel(FRIDAY - timedelta(hours=2), tick=False):
        run_due(ws)
        code, out, _ = cli("approve", "issues/2026-12-04-weekly")
    assert (code, out) == (0, "approved #1 of weekly: it goes out at 2026-12-04 08:00 UTC\n")
    assert _states(workspace_dir) == [("approved", 1)]

    code, out, err = cli("compose", "seeds", "--out", "issues/by-hand", "--allow-repeats")
    assert code == 0, err
    code, out, err = cli("approve", "issues/by-hand")
    assert code == 1 and out == ""
    assert err.startswith("error: issues/by-hand: not an issue a recurring series composed")
    assert err.count("\n") == 1 and "Traceback" not in err
    code, out, err = cli("approve", "issues/nosuch")
    assert (code, out) == (1, "") and err.startswith("error: issues/nosuch: no such folder")
    code, _, err = cli("recurring", "skip", "monthly")
    assert code == 1
    assert err == (
        "error: no recurring series named 'monthly' (series: weekly) (add a [[recurring]] "
        "table to newsletter.toml, or check the name)\n"
    )


def _titles(root: Path, out: str) -> list[str]:
    folder = out.split("composed ", 1)[1].split(" into ", 1)[1].splitlines()[0]
    issue = json.loads((root / folder / "issue.json").read_text(encoding="utf-8"))
    return [teaser["title"] for teaser in issue["teasers"]]


def test_compose_since_limit_and_allow_repeats(workspace_dir: Path, cli: Cli) -> None:
    feed = "feeds/wire.xml"
    with time_machine.travel(datetime(2026, 12, 5, 10, 0, tzinfo=UTC), tick=False):
        code, out, err = cli("compose", feed, "--since", "2026-11-25", "--limit", "1")
        assert code == 0, err
        assert _titles(workspace_dir, out) == [ITEMS[0][0]]
        code, out, err = cli("compose", feed, "--since", "7d")
        assert code == 0, err
        assert _titles(workspace_dir, out) == [ITEMS[1][0]]  # the newest was featured
        code, out, err = cli("compose", feed, "--since", "last")
        assert (code, out) == (1, "")
        assert "2 featured in an earlier issue; 1 older than --since" in err
        assert err.count("\n") == 1
        code, out, err = cli("compose", feed, "--allow-repeats", "--limit", "2")
        assert code == 0, err
        assert _titles(workspace_dir, out) == [ITEMS[0][0], ITEMS[1][0]]
        code, out, err = cli("compose", feed, "--since", "yesterday")
    assert (code, out) == (1, "")
    assert err.startswith("error: --since 'yesterday' is not a date (accepted forms: ")
    assert err.count("\n") == 1 and "Traceback" not in err
