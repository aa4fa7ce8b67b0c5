"""``serve`` on a real uvicorn server over loopback, and the wiring of the ``serve``,
``schedule list|cancel`` and ``run-due`` commands."""

from __future__ import annotations

import asyncio
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import time_machine
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.mail.tokens import make_unsubscribe_token
from newsletter.schedule.scheduled import schedule_send
from newsletter.store import Consent, Store, open_store_for
from newsletter.store.schedules import ScheduledSend, get_schedule
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    with open_store_for(workspace) as opened:
        yield opened


def _members(store: Store, count: int) -> list[int]:
    for number in range(count):
        store.add(f"reader{number}@example.org", list_name="main", consent=Consent(source="cli"))
    return [r.id for r in store.iter_recipients("main")]


def _issue(workspace: Workspace) -> Path:
    folder = workspace.issues_dir / "2026-12-01-brief"
    folder.mkdir(parents=True)
    issue = {
        "subject": "Brief",
        "date": "2026-12-01",
        "teasers": [{"title": "Tides", "summary": "High tide.", "url": "https://example.org/t"}],
    }
    (folder / "issue.json").write_text(json.dumps(issue), encoding="utf-8")
    return folder


# --- the real server ------------------------------------------------------------------------


def test_a_real_server_answers_many_concurrent_one_click_posts(
    workspace: Workspace, store: Store
) -> None:
    ids = _members(store, 40)
    list_id = store.list_id("main")
    assert list_id is not None
    keys = workspace.secret_keys()
    server = ServeServer(workspace, store=store, scheduler=False)
    server.start_in_thread()
    try:

        async def unsubscribe_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, follow_redirects=False) as client:
                page = await client.get(f"/u/{make_unsubscribe_token(keys, ids[0], list_id)}")
                assert page.status_code == 200
                return await asyncio.gather(
                    *(
                        client.post(
                            f"/u/{make_unsubscribe_token(keys, sid, list_id, 1)}", data=ONE_CLICK
                        )
                        for sid in ids
                    )
                )

        answers = asyncio.run(unsubscribe_all())
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [200] * len(ids)
    assert all("location" not in a.headers and "set-cookie" not in a.headers for a in answers)
    assert all("server" not in a.headers for a in answers)  # no software banner
    assert list(store.iter_recipients("main")) == []


def test_behind_a_trusted_proxy_the_forwarded_client_is_recorded(
    workspace: Workspace, store: Store
) -> None:
    [sid] = _members(store, 1)
    list_id = store.list_id("main")
    assert list_id is not None
    token = make_unsubscribe_token(workspace.secret_keys(), sid, list_id)
    server = ServeServer(workspace, store=store, scheduler=False)
    server.start_in_thread()
    try:
        answer = httpx.post(
            f"{server.url}/u/{token}",
            data=ONE_CLICK,
            headers={"X-Forwarded-For": "198.51.100.23", "X-Forwarded-Proto": "https"},
        )
        health = httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()
    assert answer.status_code == 200 and health.text == "ok"
    data = store.describe("reader0@example.org")
    assert data is not None
    [event] = [c for c in data["consents"] if c["action"] == "unsubscribe"]
    assert event["ip"] == "198.51.100.23"  # the loopback proxy (trusted) passed it on


def test_the_housekeeping_round_starts_due_sends_and_forgets_stale_requests(
    workspace: Workspace, store: Store
) -> None:
    _members(store, 1)
    calls: list[ScheduledSend] = []

    def runner(ws: Workspace, scheduled: ScheduledSend) -> str:
        calls.append(scheduled)
        return "sent to 1 recipient"

    with time_machine.travel(datetime(2026, 11, 27, 9, 0, tzinfo=UTC), tick=False) as clock:
        scheduled = schedule_send(workspace, _issue(workspace), "2026-12-01 08:00")
        store.add_pending("slow@example.org", list_name="main", consent=Consent(source="web"))
        server = ServeServer(workspace, store=store, runner=runner)
        try:
            clock.move_to(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
            report = server.housekeeper.tick()  # type: ignore[union-attr]
        finally:
            server.stop()
    assert report.done == [(scheduled.id, "sent to 1 recipient")]
    assert [c.id for c in calls] == [scheduled.id]
    assert store.get_by_email("slow@example.org") is None  # asked 4 days ago, never confirmed


def test_a_taken_port_is_a_clear_error(workspace: Workspace, store: Store) -> None:
    from newsletter.errors import NewsletterError

    first = ServeServer(workspace, store=store, scheduler=False)
    port = int(first.url.rsplit(":", 1)[1])
    try:
        with pytest.raises(NewsletterError, match=f"cannot listen on 127.0.0.1:{port}"):
            ServeServer(workspace, store=store, scheduler=False, port=port)
    finally:
        first.stop()


# --- CLI wiring -----------------------------------------------------------------------------


def _invoke(workspace: Workspace, *args: str) -> object:
    return CliRunner().invoke(cli, ["-w", str(workspace.root), *args])


def test_serve_refuses_fewer_than_one_worker(workspace: Workspace) -> None:
    result = CliRunner().invoke(
        cli, ["-w", str(workspace.root), "serve", "--workers", "0", "--port", "0"]
    )
    assert result.exit_code == 1
    assert str(result.exception) == (
        "--workers must be at least 1, not 0 "
        "(1 serves from one process; more answer links on more cores)"
    )


def test_schedule_list_and_cancel_commands(workspace: Workspace, store: Store) -> None:
    _members(store, 1)
    empty = CliRunner().invoke(cli, ["-w", str(workspace.root), "schedule", "list"])
    assert empty.exit_code == 0 and "nothing scheduled" in empty.output
    scheduled = schedule_send(workspace, _issue(workspace), "2099-01-05 08:00 Europe/Berlin")
    listed = CliRunner().invoke(cli, ["-w", str(workspace.root), "schedule", "list"])
    assert listed.exit_code == 0
    assert listed.output.startswith(f"#{scheduled.id}\tscheduled\t2099-01-05 08:00 Europe/Berlin")
    cancelled = CliRunner().invoke(
        cli, ["-w", str(workspace.root), "schedule", "cancel", str(scheduled.id)]
    )
    assert cancelled.exit_code == 0 and "\tcancelled\t" in cancelled.output
    waiting = CliRunner().invoke(cli, ["-w", str(workspace.root), "schedule", "list", "--waiting"])
    assert "nothing scheduled" in waiting.output
    again = CliRunner().invoke(
        cli, ["-w", str(workspace.root), "schedule", "cancel", str(scheduled.id)]
    )
    assert again.exit_code == 1 and "not waiting" in str(again.exception)


def test_send_at_records_a_scheduled_send(workspace: Workspace, store: Store) -> None:
    _members(store, 1)
    folder = _issue(workspace)
    result = CliRunner().invoke(
        cli, ["-w", str(workspace.root), "send", str(folder), "--at", "2099-03-02 07:30 UTC"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("scheduled #1\tscheduled\t2099-03-02 07:30 UTC\t")
    listed = CliRunner().invoke(cli, ["-w", str(workspace.root), "schedule", "list"])
    assert "issues/2026-12-01-brief\tlist main" in listed.output
    bad = CliRunner().invoke(
        cli, ["-w", str(workspace.root), "send", str(folder), "--at", "tomorrow morning"]
    )
    assert bad.exit_code == 1 and "needs a time of day" in str(bad.exception)


def test_run_due_reports_a_missed_send_and_exits_1(workspace: Workspace, store: Store) -> None:
    _members(store, 1)
    with time_machine.travel(datetime(2026, 11, 27, 9, 0, tzinfo=UTC), tick=False) as clock:
        scheduled = schedule_send(workspace, _issue(workspace), "2026-12-01 08:00")
        idle = CliRunner().invoke(cli, ["-w", str(workspace.root), "run-due"])
        assert idle.exit_code == 0 and "nothing due" in idle.output
        clock.move_to(datetime(2026, 12, 3, 7, 0, tzinfo=UTC))
        late = CliRunner().invoke(cli, ["-w", str(workspace.root), "run-due"])
    assert late.exit_code == 1
    assert late.output.startswith(f"#{scheduled.id} missed: not sent")
    stored = get_schedule(store, scheduled.id)
    assert stored is not None and stored.state == "missed"


@pytest.mark.e2e
def test_the_serve_command_serves_until_interrupted(workspace_dir: Path) -> None:
    script = shutil.which("newsletter", path=str(Path(sys.executable).parent))
    assert script, "the newsletter console script is not installed next to this Python"
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "e2e-key"}
    subprocess.run(
        [script, "subscribers", "add", "eve@example.org"],
        cwd=workspace_dir,
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [script, "serve", "--port", "0"],
        cwd=workspace_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=60), "serve printed nothing within 60 s"
        line = proc.stdout.readline()
        assert "serving the links of https://brief.example.org on http://127.0.0.1:" in line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        assert httpx.get(f"{url}/healthz").text == "ok"
        token = make_unsubscribe_token(("e2e-key",), 1, 1)
        assert httpx.post(f"{url}/u/{token}", data=ONE_CLICK).status_code == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "serve stopped" in out and "Traceback" not in err
    # one access line per request, at the default verbosity, and never the token
    assert re.search(r"GET /healthz 200 [0-9.]+ ms 127\.0\.0\.1", err), err
    assert re.search(r"POST /u/<token> 200 [0-9.]+ ms 127\.0\.0\.1", err), err
    assert token not in err and token not in out
    listed = subprocess.run(
        [script, "subscribers", "list"],
        cwd=workspace_dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "unsubscribed" in listed.stdout
