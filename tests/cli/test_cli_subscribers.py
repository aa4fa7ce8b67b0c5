"""Wiring of `newsletter subscribers ...` and `newsletter unsubscribe` (behaviour: core tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.errors import StoreError

CSV_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
Invoke = Callable[..., Result]


@pytest.fixture
def invoke(workspace_dir: Path) -> Invoke:
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["-w", str(workspace_dir), *args], input=input)

    return run


def test_import_prints_summary_and_bad_lines(invoke: Invoke, workspace_dir: Path) -> None:
    result = invoke("subscribers", "import", str(CSV_DIR / "messy.csv"))
    assert result.exit_code == 1, result.output  # valid rows in, bad rows flagged
    assert "messy.csv: 5 rows (generic): 2 added" in result.stdout
    assert f"{CSV_DIR / 'messy.csv'}:5: 'not-an-address'" in result.stderr
    assert f"{CSV_DIR / 'messy.csv'}:6: no email address" in result.stderr
    assert "import the file again" in result.stderr
    assert (workspace_dir / "subscribers" / "newsletter.db").is_file()


def test_import_options_reach_the_core(invoke: Invoke) -> None:
    sample = "subscribers/subscribers.csv"
    result = invoke("subscribers", "import", "--list", "weekly", "--format", "generic", sample)
    assert result.exit_code == 0, result.output
    assert invoke("subscribers", "count", "--list", "weekly").stdout.strip() == "5"
    assert invoke("unsubscribe", "ada.lovelace@example.com").exit_code == 0
    again = invoke("subscribers", "import", "--list", "weekly", sample)
    assert "1 suppressed" in again.stdout
    back = invoke("subscribers", "import", "--list", "weekly", "--resubscribe", "asked", sample)
    assert "1 resubscribed" in back.stdout
    explicit = invoke("subscribers", "import", "--encoding", "utf-8", sample)
    assert explicit.exit_code == 0 and "5 added" in explicit.stdout  # default list: send.list
    assert invoke("subscribers", "count", "--list", "main").stdout.strip() == "5"


def test_refused_import_is_an_error(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nAda\n", encoding="utf-8")
    result = invoke("subscribers", "import", str(bad))
    assert result.exit_code == 1
    assert isinstance(result.exception, StoreError)
    assert "no email column" in str(result.exception)


def test_add_show_list_count_remove_erase(invoke: Invoke) -> None:
    added = invoke(
        "subscribers", "add", "Nia@Example.com", "--name", "Nia", "--attr", "city=Nairobi"
    )
    assert added.exit_code == 0 and added.stdout.strip() == "nia@example.com: added (main)"
    shown = json.loads(invoke("subscribers", "show", "nia@example.com").stdout)
    assert shown["attributes"] == {"city": "Nairobi"}
    assert shown["consents"][0]["source"] == "cli"
    listing = invoke("subscribers", "list").stdout
    assert listing == "nia@example.com\tactive\tmain\tNia\n"
    assert invoke("subscribers", "count", "--status", "active").stdout == "1\n"
    removed = invoke("subscribers", "remove", "nia@example.com")
    assert removed.stdout.strip() == "nia@example.com: removed from main"
    assert invoke("subscribers", "count", "--list", "main", "--status", "active").stdout == "0\n"
    refused = invoke("subscribers", "erase", "nia@example.com", input="n\n")
    assert refused.exit_code == 1 and "Erase all data" in refused.output
    erased = invoke("subscribers", "erase", "nia@example.com", "--yes")
    assert "personal data erased" in erased.stdout
    blocked = invoke("subscribers", "add", "nia@example.com")
    assert blocked.exit_code == 1 and isinstance(blocked.exception, StoreError)


def test_unsubscribe_from_one_list(invoke: Invoke) -> None:
    invoke("subscribers", "add", "x@example.com", "--list", "weekly")
    result = invoke("unsubscribe", "x@example.com", "--list", "weekly")
    assert result.stdout.strip() == "x@example.com: unsubscribed from weekly"
    again = invoke("unsubscribe", "x@example.com", "--list", "weekly")
    assert again.stdout.strip() == "x@example.com: already unsubscribed from weekly"


def test_unsubscribing_a_stranger_says_so_and_blocks_the_address(invoke: Invoke) -> None:
    result = invoke("unsubscribe", "stranger@example.com")
    assert result.exit_code == 0
    assert "not a subscriber" in result.stdout and "blocked" in result.stdout
    added = invoke("subscribers", "add", "stranger@example.com")
    assert added.exit_code == 1


def test_unknown_list_or_address_is_an_error(invoke: Invoke) -> None:
    invoke("subscribers", "add", "x@example.com")
    for args in (
        ("unsubscribe", "x@example.com", "--list", "nope"),
        ("subscribers", "remove", "x@example.com", "--list", "nope"),
        ("subscribers", "remove", "y@example.com"),
        ("subscribers", "show", "y@example.com"),
    ):
        result = invoke(*args)
        assert result.exit_code == 1 and isinstance(result.exception, StoreError), args
    assert "lists: main" in str(invoke("unsubscribe", "x@example.com", "--list", "no").exception)


def test_export_to_stdout_and_file(invoke: Invoke, tmp_path: Path) -> None:
    invoke("subscribers", "import", "subscribers/subscribers.csv")
    out = invoke("subscribers", "export", "--status", "active")
    assert out.exit_code == 0
    assert out.stdout.splitlines()[0].startswith("email,name,status,lists")
    assert len(out.stdout.splitlines()) == 6
    assert "exported 5 subscribers" in out.stderr
    target = tmp_path / "all.csv"
    assert invoke("subscribers", "export", "--list", "main", str(target)).exit_code == 0
    again = invoke("subscribers", "import", str(target))
    assert "5 unchanged" in again.stdout


def test_bad_status_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("subscribers", "count", "--status", "happy")
    assert result.exit_code == 2


@pytest.mark.e2e
def test_real_cli_refusal_is_one_line(workspace_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nAda\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "subscribers", "import", str(bad)],
        cwd=workspace_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "no email column" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_remove_from_a_list_they_are_not_on_is_refused_and_changes_nothing(
    invoke: Invoke,
) -> None:
    invoke("subscribers", "add", "x@example.com")
    invoke("subscribers", "add", "y@example.com", "--list", "weekly")
    result = invoke("subscribers", "remove", "x@example.com", "--list", "weekly")
    assert result.exit_code == 1 and isinstance(result.exception, StoreError)
    assert str(result.exception) == (
        "x@example.com is not on weekly; nothing changed (its lists: main)"
    )
    assert invoke("subscribers", "list").stdout.startswith("x@example.com\tactive\tmain\t")


@pytest.mark.parametrize("status", ["active", "pending", "unsubscribed", "bounced", "complained"])
def test_every_status_offered_by_help_works_with_and_without_list(
    invoke: Invoke, status: str
) -> None:
    invoke("subscribers", "add", "x@example.com")
    assert status in invoke("subscribers", "count", "--help").stdout
    for verb in ("count", "list", "export"):
        for extra in ((), ("--list", "main")):
            result = invoke("subscribers", verb, "--status", status, *extra)
            assert result.exit_code == 0, (verb, extra, result.output)


def test_leaving_every_list_shows_as_unsubscribed(invoke: Invoke) -> None:
    invoke("subscribers", "add", "x@example.com")
    invoke("unsubscribe", "x@example.com", "--list", "main")
    assert (
        invoke("subscribers", "list").stdout
        == "x@example.com\tunsubscribed\tmain(unsubscribed)\t\n"
    )
    assert invoke("subscribers", "count", "--status", "active").stdout == "0\n"
    assert invoke("subscribers", "list", "--status", "unsubscribed").stdout.startswith("x@")
    assert json.loads(invoke("subscribers", "show", "x@example.com").stdout)["status"] == (
        "unsubscribed"
    )


EVIL_NAME = "Eve\x1b[2J\x1b]0;owned\x07\rroot# fake\x9b31m"


def test_control_characters_in_names_never_reach_the_terminal(
    invoke: Invoke, tmp_path: Path
) -> None:
    people = tmp_path / "people.csv"
    people.write_text(
        f'email,name\neve@example.com,"{EVIL_NAME}"\n"bad\x1b[2J",x\n', encoding="utf-8"
    )
    imported = invoke("subscribers", "import", str(people))
    assert "\x1b" not in imported.stderr and "bad" in imported.stderr
    for args in (("subscribers", "list"), ("subscribers", "show", "eve@example.com")):
        out = invoke(*args).stdout
        for char in ("\x1b", "\x07", "\r", "\x9b"):
            assert char not in out, (args, char)
    listed = invoke("subscribers", "list").stdout
    assert listed.endswith("\tEve[2J]0;owned root# fake31m\n")
    stored = " ".join(EVIL_NAME.split())  # the import folds the carriage return to a space
    shown = json.loads(invoke("subscribers", "show", "eve@example.com").stdout)
    assert shown["name"] == stored  # escaped in the JSON, not lost
    # a pipe (not a terminal) gets the export exact, for a re-import
    assert stored in invoke("subscribers", "export").stdout


def test_a_refused_re_add_says_why_the_address_left(invoke: Invoke) -> None:
    """The refusal names what the store knows: the list left, everything left, erased."""
    reasons = {
        "a@example.org": (
            ["unsubscribe", "a@example.org", "--list", "main"],
            "unsubscribed from main",
        ),
        "b@example.org": (["unsubscribe", "b@example.org"], "unsubscribed from everything"),
        "c@example.org": (["subscribers", "erase", "c@example.org", "--yes"], "was erased"),
    }
    for address, (leave, why) in reasons.items():
        assert invoke("subscribers", "add", address).exit_code == 0
        assert invoke(*leave).exit_code == 0
        again = invoke("subscribers", "add", address)
        assert again.exit_code == 1 and isinstance(again.exception, StoreError)
        assert str(again.exception).startswith(f"{address} {why}; not added to main")
