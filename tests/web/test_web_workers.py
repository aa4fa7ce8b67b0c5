"""``newsletter serve --workers N``: real processes on a real SQLite workspace.

Each test runs the command as a subprocess and waits on what it prints (the ready line,
the workers' log lines), never on a timer; ``psutil`` shows the worker processes.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest
import time_machine
from sqlalchemy import select

from ledger_server import write_issue
from newsletter.mail.tokens import make_unsubscribe_token
from newsletter.schedule.scheduled import schedule_send
from newsletter.store import Consent, Store, open_store_for
from newsletter.store.deliveries import deliveries
from newsletter.workspace import Workspace

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
WAIT_SECONDS = 60.0
POSTED = r"info: POST /u/<token> 200 [0-9.]+ ms 127\.0\.0\.1$"


class Serving:
    """``newsletter serve --port 0 ARGS`` in ``root``; its stderr lines gathered as they
    come, so a test can wait for one."""

    def __init__(self, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", "0", *args],
            cwd=root,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._closed = False
        self._news = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._news:
                self.lines.append(line.rstrip("\n"))
                self._news.notify_all()
        with self._news:
            self._closed = True
            self._news.notify_all()

    def matching(self, pattern: str) -> list[re.Match[str]]:
        """The stderr lines so far that ``pattern`` matches (from their start)."""
        with self._news:
            return [m for line in self.lines if (m := re.match(pattern, line))]

    def wait_for(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """Wait until ``count`` stderr lines match ``pattern`` -> all the matches."""
        with self._news:
            self._news.wait_for(
                lambda: self._closed or len(self.matching(pattern)) >= count, WAIT_SECONDS
            )
        found = self.matching(pattern)
        assert len(found) >= count, f"waited for {count} x {pattern!r}; stderr: {self.lines}"
        return found

    def url(self) -> str:
        """Wait for the ready line on stdout -> the URL it names."""
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        assert selector.select(WAIT_SECONDS), f"no ready line; stderr: {self.lines}"
        line = self.proc.stdout.readline()
        assert " on http://127.0.0.1:" in line, (line, self.lines)
        return line.split(" on ", 1)[1].split(" ", 1)[0]

    def workers(self) -> list[int]:
        """The pids of the worker processes running now."""
        return sorted(child.pid for child in psutil.Process(self.proc.pid).children())

    def finish(self, sig: int | None = signal.SIGINT) -> tuple[int, str]:
        """Send ``sig`` (None: none), wait for the end -> (exit code, stdout after the
        ready line)."""
        if sig is not None:
            self.proc.send_signal(sig)
        code = self.proc.wait(WAIT_SECONDS)
        self._reader.join(WAIT_SECONDS)
        assert self.proc.stdout is not None
        return code, self.proc.stdout.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # the workers notice their parent is gone and stop
            self.proc.wait()


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    with open_store_for(workspace) as opened:
        yield opened


def _member(store: Store, email: str) -> str:
    """Add ``email`` to "main" -> the path of its unsubscribe link."""
    store.add(email, list_name="main", consent=Consent(source="cli"))
    subscriber = store.get_by_email(email)
    list_id = store.list_id("main")
    assert subscriber is not None and list_id is not None
    return f"/u/{make_unsubscribe_token(('test-key-not-secret',), subscriber.id, list_id)}"


def _ready_pid(serving: Serving, slot: int, count: int, nth: int = 1) -> int:
    """The pid of the ``nth`` worker that said it is ready in ``slot``."""
    found = serving.wait_for(rf"info: worker {slot}/{count}: ready \(pid (\d+)\)", nth)
    return int(found[nth - 1][1])


def test_workers_answer_links_and_a_killed_one_is_replaced(
    workspace: Workspace, store: Store
) -> None:
    first, second = _member(store, "ann@example.org"), _member(store, "bob@example.org")
    serving = Serving(workspace.root, "--workers", "2")
    try:
        url = serving.url()
        pids = [_ready_pid(serving, slot, 2) for slot in (1, 2)]
        assert serving.workers() == sorted(pids)
        page = httpx.get(url + first)
        answer = httpx.post(url + first, data=ONE_CLICK)
        assert page.status_code == 200 and answer.status_code == 200
        # access lines look as a single process writes them: no worker named (a worker
        # writes its line just after the answer: wait for it before killing one)
        serving.wait_for(POSTED)

        os.kill(pids[1], signal.SIGKILL)
        replacement = _ready_pid(serving, 2, 2, nth=2)
        assert serving.matching(rf"warning: worker 2/2 \(pid {pids[1]}\) was killed by SIGKILL")
        assert serving.workers() == sorted([pids[0], replacement])
        assert httpx.post(url + second, data=ONE_CLICK).status_code == 200

        code, out = serving.finish(signal.SIGINT)
    finally:
        serving.kill()
    assert code == 0, serving.lines
    assert out == "serve stopped\n"
    assert not any(psutil.pid_exists(pid) for pid in [*pids, replacement])
    assert len(serving.matching(r"info: worker [12]/2: serve stopped")) == 2
    assert not [line for line in serving.lines if "Traceback" in line]
    assert len(serving.matching(POSTED)) == 2
    assert list(store.iter_recipients("main")) == []


def _due_send(workspace: Workspace) -> int:
    """A scheduled send of a small issue to "main", due five minutes ago -> its id."""
    folder = write_issue(workspace.root, "2026-12-01-brief")
    now = datetime.now(UTC)
    due = now - timedelta(minutes=5)
    with time_machine.travel(now - timedelta(minutes=10), tick=False):
        return schedule_send(workspace, folder, due.strftime("%Y-%m-%d %H:%M UTC")).id


def test_the_scheduler_runs_in_one_worker_and_moves_to_its_replacement(
    workspace: Workspace, store: Store
) -> None:
    _member(store, "ann@example.org")
    scheduled = _due_send(workspace)
    serving = Serving(workspace.root, "--workers", "3")
    try:
        url = serving.url()
        [done] = serving.wait_for(rf"info: (worker \d/3): scheduled send #{scheduled} done")
        assert done[1] == "worker 1/3"
        pids = [_ready_pid(serving, slot, 3) for slot in (1, 2, 3)]
        started = serving.matching(r"info: (worker \d/3): scheduler started")
        assert [m[1] for m in started] == ["worker 1/3"]

        os.kill(pids[0], signal.SIGKILL)
        replacement = _ready_pid(serving, 1, 3, nth=2)
        started = serving.matching(r"info: (worker \d/3): scheduler started")
        assert [m[1] for m in started] == ["worker 1/3", "worker 1/3"]
        assert serving.workers() == sorted([replacement, *pids[1:]])
        assert httpx.get(f"{url}/healthz").text == "ok"
        code, _ = serving.finish(signal.SIGTERM)  # as a service manager stops it
    finally:
        serving.kill()
    assert code == 0, serving.lines
    assert len(serving.matching(rf"info: worker \d/3: starting scheduled send #{scheduled}")) == 1
    with store.read() as conn:
        statuses = conn.execute(select(deliveries.c.status)).scalars().all()
    assert statuses == ["sent"]


def test_a_worker_that_cannot_start_ends_serve_with_its_error(
    workspace: Workspace, store: Store
) -> None:
    _member(store, "ann@example.org")
    database = workspace.root / "subscribers" / "newsletter.db"
    serving = Serving(workspace.root, "--workers", "2")
    try:
        serving.url()
        pids = [_ready_pid(serving, slot, 2) for slot in (1, 2)]
        # the running workers keep their open database; a new one finds a folder instead
        database.rename(database.with_name("moved.db"))
        database.mkdir()
        os.kill(pids[1], signal.SIGKILL)
        code, out = serving.finish(sig=None)
    finally:
        serving.kill()
    assert code == 1
    assert out == ""
    [error] = [line for line in serving.lines if line.startswith("error:")]
    assert error.startswith(f"error: cannot open database sqlite:///{database}")
    assert len(serving.matching(r"warning: worker 2/2 .* starting another")) == 1  # no loop
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert not [line for line in serving.lines if "Traceback" in line]


def test_a_broken_template_stops_serve_before_any_worker_starts(workspace: Workspace) -> None:
    pages = workspace.templates_dir / "pages"
    pages.mkdir(parents=True, exist_ok=True)
    (pages / "invalid_link.html.j2").write_text("{% block content %}", encoding="utf-8")
    serving = Serving(workspace.root, "--workers", "2")
    try:
        code, out = serving.finish(sig=None)
    finally:
        serving.kill()
    assert code == 1 and out == ""
    [line] = serving.lines
    assert line.startswith("error: ") and "templates/pages/invalid_link.html.j2" in line


def test_one_process_stops_on_sigterm_as_on_ctrl_c(workspace: Workspace) -> None:
    serving = Serving(workspace.root)
    try:
        assert httpx.get(f"{serving.url()}/healthz").text == "ok"
        assert serving.workers() == []
        code, out = serving.finish(signal.SIGTERM)
    finally:
        serving.kill()
    assert code == 0 and out == "serve stopped\n"
    assert serving.matching("info: serve stopped$")
