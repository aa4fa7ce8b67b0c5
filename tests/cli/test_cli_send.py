"""Wiring of `newsletter send` (behaviour is tested on the core in tests/deliver/), the
README's main job run twice, and a real `kill -9` in the middle of a send."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from ledger_server import DROP_AFTER, LedgerHandler, LedgerServer, add_members, write_issue
from newsletter.cli import cli
from newsletter.deliver import send_issue
from newsletter.errors import AlreadySentError, NewsletterError
from newsletter.store import open_store_for
from newsletter.store.deliveries import deliveries
from newsletter.workspace import Workspace, load_workspace

Invoke = Callable[..., Result]
SAMPLE_COUNT = 5


@pytest.fixture
def server() -> Iterator[LedgerServer]:
    controller = LedgerServer(LedgerHandler())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def invoke(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-key-not-secret")
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["-w", str(workspace_dir), *args], input=input)

    return run


@pytest.fixture
def issue(invoke: Invoke, workspace_dir: Path) -> Path:
    assert invoke("subscribers", "import", "subscribers/subscribers.csv").exit_code == 0
    return write_issue(workspace_dir)


def received(server: LedgerServer) -> int:
    handler = server.handler
    assert isinstance(handler, LedgerHandler)
    return sum(handler.per_address().values())


def test_send_asks_first_and_refuses_without_a_terminal(
    invoke: Invoke, issue: Path, server: LedgerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", server.url)
    refused = invoke("send", str(issue))
    assert refused.exit_code == 1 and isinstance(refused.exception, NewsletterError)
    assert "pass --yes" in str(refused.exception)
    assert "to 5 recipients on list 'main'" in str(refused.exception)
    assert received(server) == 0

    sent = invoke("send", str(issue), "--yes", "--connections", "2", "--rate", "600/m")
    assert sent.exit_code == 0, sent.output
    assert "sent 5, failed 0, deferred 0, skipped 0, unknown 0" in sent.stdout
    assert f"delivered through smtp://127.0.0.1:{server.port}" in sent.stdout
    assert received(server) == 5

    again = invoke("send", str(issue), "--yes")
    assert again.exit_code == 1 and isinstance(again.exception, AlreadySentError)


def test_send_option_errors(invoke: Invoke, issue: Path) -> None:
    assert invoke("send").exit_code == 2
    assert invoke("send", str(issue), "--latest").exit_code == 2
    both = invoke("send", str(issue), "--test", "a@example.org", "--dry-run", "out")
    assert both.exit_code == 2 and "only one of" in both.output
    bad_rate = invoke("send", str(issue), "--rate", "fast", "--yes")
    assert bad_rate.exit_code == 2 and "is not a rate" in bad_rate.output


def test_send_test_dry_run_and_at(
    invoke: Invoke,
    issue: Path,
    server: LedgerServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", server.url)
    test = invoke("send", str(issue), "--test", "me@example.org", "--test", "you@example.org")
    assert test.exit_code == 0, test.output
    assert "test send: sent 2" in test.stdout and received(server) == 2

    dry = invoke("send", str(issue), "--dry-run", str(tmp_path / "out"))
    assert dry.exit_code == 0, dry.output
    assert "wrote 5 messages" in dry.stdout and len(list((tmp_path / "out").glob("*.eml"))) == 5
    assert received(server) == 2

    later = invoke("send", str(issue), "--at", "2099-12-01 08:00 Europe/Berlin")
    assert later.exit_code == 0, later.output
    assert later.stdout.startswith("scheduled #1\tscheduled\t2099-12-01 08:00")
    assert received(server) == 2
    someday = invoke("send", "--latest", "--at", "someday")
    assert someday.exit_code == 1 and someday.stdout == ""  # no "issue: ..." before the error


def test_a_dry_run_to_an_empty_list_fails_like_send(
    invoke: Invoke, issue: Path, tmp_path: Path
) -> None:
    assert invoke("subscribers", "add", "x@example.org", "--list", "weekly").exit_code == 0
    assert invoke("subscribers", "remove", "x@example.org", "--list", "weekly").exit_code == 0
    dry = invoke("send", str(issue), "--dry-run", str(tmp_path / "out"), "--list", "weekly")
    assert dry.exit_code == 1 and isinstance(dry.exception, NewsletterError)
    assert "'weekly' has nobody to send to" in str(dry.exception)
    assert not (tmp_path / "out").exists()


def test_send_latest_passes_the_list_and_help_shows_no_fixed_date(
    invoke: Invoke, issue: Path, server: LedgerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", server.url)
    assert invoke("send", "--latest", "--yes").exit_code == 0
    again = invoke("send", "--latest", "--yes")
    assert again.exit_code == 1 and "already sent to list 'main'" in str(again.exception)
    help_text = invoke("send", "--help").output
    assert "tomorrow 08:00" in help_text and "2026-" not in help_text


@pytest.mark.e2e
def test_readme_main_job_works_twice_in_one_workspace(invoke: Invoke, workspace_dir: Path) -> None:
    """compose makes a new folder each time (the second with --allow-repeats, as the README
    says: the articles were featured already); send --latest sends the newest, through the
    embedded server (no NEWSLETTER_SMTP_URL)."""
    for run in (1, 2):
        assert invoke("subscribers", "import", "subscribers/subscribers.csv").exit_code == 0
        again = ["--allow-repeats"] if run == 2 else []
        composed = invoke("compose", "seeds/", "--subject", "The Weekly Brief", *again)
        assert composed.exit_code == 0, composed.output
        sent = invoke("send", "--latest", "--yes")
        assert sent.exit_code == 0, sent.output
        assert "sent 5, failed 0" in sent.stdout
        assert "delivered through the embedded local SMTP server (messages stored in" in (
            sent.stdout
        )
        assert len(list((workspace_dir / "outbox").glob("*.eml"))) == 5 * run
    folders = sorted(p.name for p in (workspace_dir / "issues").iterdir())
    assert len(folders) == 2 and folders[1] == folders[0] + "-2"


@pytest.mark.e2e
def test_kill_9_mid_send_then_rerun_misses_nobody(workspace: Workspace, tmp_path: Path) -> None:
    """A real SIGKILL while three connections are mid-message: the rerun delivers to
    everyone not yet sent; only messages in flight may arrive twice (<= connections)."""
    connections, total, kill_after = 3, SAMPLE_COUNT + 25, 8
    ws = workspace
    with open_store_for(ws) as store:
        from newsletter.audience.importing import import_file

        import_file(
            store, ws.root / "subscribers" / "subscribers.csv", list_name=None, default_list="main"
        )
    add_members(ws, 25)
    issue = write_issue(ws.root)
    handler = LedgerHandler()
    reached, gate = threading.Event(), threading.Event()

    def freeze_after(count: int, rcpt: str) -> None:
        if count >= kill_after:
            reached.set()
            gate.wait(30)  # holds the server's loop: every connection stalls mid-message

    handler.after_store = freeze_after
    server = LedgerServer(handler)
    server.start()
    try:
        env = {
            **os.environ,
            "NEWSLETTER_SMTP_URL": server.url,
            "NEWSLETTER_SECRET_KEY": "test-key-not-secret",
        }
        sender = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "newsletter",
                "-w",
                str(ws.root),
                "send",
                str(issue),
                "--yes",
                "--connections",
                str(connections),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert reached.wait(60), sender.stderr.read() if sender.stderr else ""
        finally:
            os.kill(sender.pid, signal.SIGKILL)
            sender.wait()
            gate.set()
        assert sender.returncode == -signal.SIGKILL
        with open_store_for(ws) as store, store.read() as conn:
            in_flight = conn.scalar(
                select(deliveries.c.id).where(deliveries.c.status == "sending").limit(1)
            )
        assert in_flight is not None  # killed mid-send, not after

        ws = load_workspace(ws.root)
        report = send_issue(ws, issue, smtp_url=server.url, connections=connections)
        assert report.recovered <= connections
        assert report.state == "finished"
        counts = handler.per_address()
        assert len(counts) == total  # nobody missed
        duplicates = sum(n - 1 for n in counts.values())
        assert duplicates <= connections
        assert report.campaign_sent == total
    finally:
        gate.set()
        server.stop()


def test_retry_unknown_reaches_the_plan_and_the_send(
    invoke: Invoke, issue: Path, server: LedgerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", server.url)
    handler = server.handler
    assert isinstance(handler, LedgerHandler)
    handler.data_script.extend(["250 OK"] * (SAMPLE_COUNT - 1) + [DROP_AFTER])
    first = invoke("send", str(issue), "--yes", "--connections", "1")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[0] == (
        "sent 4, failed 0, deferred 0, skipped 0, unknown 1; 1 got no reply after their data "
        "(some may have arrived): send again with --retry-unknown to resend them"
    )
    assert received(server) == SAMPLE_COUNT

    again = invoke("send", str(issue), "--retry-unknown", "--yes")
    assert again.exit_code == 0, again.output
    assert "sent 1, failed 0, deferred 0, skipped 0, unknown 0 (campaign: 5 of 5 sent)" in (
        again.stdout
    )
    assert received(server) == SAMPLE_COUNT + 1

    other = write_issue(issue.parent.parent, name="2026-11-28-never-sent")
    never = invoke("send", str(other), "--retry-unknown", "--yes")  # refused by the plan
    assert never.exit_code == 1 and "was never sent to list 'main'" in str(never.exception)
    assert received(server) == SAMPLE_COUNT + 1


def test_failures_beyond_the_first_ten_are_counted(
    invoke: Invoke, issue: Path, server: LedgerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", server.url)
    refused = add_members(load_workspace(issue.parent.parent), 13)
    handler = server.handler
    assert isinstance(handler, LedgerHandler)
    handler.rcpt_replies.update(dict.fromkeys(refused, "550 5.1.1 no such mailbox"))
    sent = invoke("send", str(issue), "--yes")
    assert sent.exit_code == 0, sent.output
    failed_lines = [line for line in sent.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed_lines) == 10
    assert "failed: reader000@example.org: 550 5.1.1 no such mailbox" in failed_lines
    assert sent.stderr.splitlines()[-1] == "... and 3 more failed"
    assert sent.stdout.startswith("sent 5, failed 13, deferred 0, skipped 0, unknown 0\n")


def test_only_deferrals_not_yet_due_means_nothing_to_send_now(
    invoke: Invoke, issue: Path, server: LedgerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", server.url)
    handler = server.handler
    assert isinstance(handler, LedgerHandler)
    handler.rcpt_replies["grace.hopper@example.net"] = "451 4.2.1 mailbox busy, try later"
    first = invoke("send", str(issue), "--yes")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("sent 4, failed 0, deferred 1, ")
    again = invoke("send", str(issue))  # no --yes: a waiting send asks nothing
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("nothing to send now: 1 deferred, next attempt from 20")
    assert again.stdout.rstrip().endswith(" UTC")
    assert received(server) == SAMPLE_COUNT - 1


# --- on a terminal: the prompt and the progress bar -------------------------------------------


class Terminal:
    """A command on a pseudo-terminal (its stdin, stdout and stderr), output collected."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        self.process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        self._output = b""
        self._closed = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # EIO: the command and its terminal are gone
                chunk = b""
            with self._changed:
                self._output += chunk
                self._closed = not chunk
                self._changed.notify_all()
            if not chunk:
                return

    @property
    def output(self) -> str:
        with self._changed:
            return self._output.decode("utf-8", "replace")

    def wait_for(self, text: str) -> None:
        with self._changed:
            self._changed.wait_for(lambda: text in self.output or self._closed, timeout=60)
        assert text in self.output, self.output

    def type(self, text: str) -> None:
        os.write(self._master, text.encode())

    def finish(self) -> int:
        code = self.process.wait(60)
        self._reader.join(10)
        os.close(self._master)
        return code


def send_on_terminal(workspace_dir: Path, *args: str, smtp_url: str = "") -> Terminal:
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "test-key-not-secret", "COLUMNS": "120"}
    if smtp_url:
        env["NEWSLETTER_SMTP_URL"] = smtp_url
    command = [sys.executable, "-m", "newsletter", "-w", str(workspace_dir), "send", *args]
    return Terminal(command, env)


@pytest.mark.e2e
def test_declining_the_prompt_sends_nothing_and_exits_1(
    invoke: Invoke, issue: Path, workspace_dir: Path
) -> None:
    terminal = send_on_terminal(workspace_dir, str(issue))
    terminal.wait_for("[y/N]")
    # no NEWSLETTER_SMTP_URL: the prompt names the embedded server as the summary does
    assert "through the embedded local SMTP server (messages stored in" in terminal.output
    terminal.type("n\n")
    assert terminal.finish() == 1
    assert terminal.output.rstrip().endswith("not sent"), terminal.output
    assert not list(workspace_dir.glob("outbox/*.eml"))


@pytest.mark.e2e
def test_ctrl_c_warning_starts_below_the_progress_bar(
    invoke: Invoke, issue: Path, workspace_dir: Path, server: LedgerServer
) -> None:
    add_members(load_workspace(workspace_dir), 25)
    handler = server.handler
    assert isinstance(handler, LedgerHandler)
    reached, gate = threading.Event(), threading.Event()

    def hold_after_two(count: int, rcpt: str) -> None:
        if count >= 2:
            reached.set()
            gate.wait(30)  # holds the server's loop: both connections stall mid-message

    handler.after_store = hold_after_two
    terminal = send_on_terminal(
        workspace_dir, str(issue), "--yes", "--connections", "2", smtp_url=server.url
    )
    try:
        assert reached.wait(60), terminal.output
        terminal.wait_for("sending")
        terminal.process.send_signal(signal.SIGINT)
        terminal.wait_for("warning: stopping")
    finally:
        gate.set()
    assert terminal.finish() == 130, terminal.output
    output = terminal.output
    warning_at = output.index("warning: stopping")
    assert output[warning_at - 1] == "\n", repr(output[max(warning_at - 80, 0) : warning_at])
    assert "interrupted; to resume, run: newsletter send" in output
    assert received(server) < SAMPLE_COUNT + 25
