"""Scheduled sends through the real ledger (``newsletter.deliver``) to the embedded SMTP
server: a due send reaches every active member once and nobody else, and a send whose
process died part-way is taken over and finished without a second copy to anyone."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections import Counter
from datetime import UTC, datetime
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
import time_machine
from aiosmtpd.controller import Controller

from newsletter.compose.folder import write_issue_folder
from newsletter.compose.issue_file import parse_issue
from newsletter.deliver import send_issue
from newsletter.render.pipeline import render_issue
from newsletter.schedule.due import RunReport, run_due
from newsletter.schedule.scheduled import schedule_send
from newsletter.smtp.embedded import outbox_dir
from newsletter.store import Consent, ImportRow, open_store_for
from newsletter.store.schedules import claim_schedule, get_schedule
from newsletter.workspace import Workspace, load_workspace

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sample_issue.json"
BEFORE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
DUE = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 08:00 in Berlin


def _issue(workspace: Workspace) -> Path:
    issue = parse_issue(GOLDEN.read_text(encoding="utf-8"), GOLDEN)
    folder = workspace.issues_dir / "2026-12-01-weekly-brief"
    write_issue_folder(folder, issue, render_issue(workspace, issue))
    return folder


def _recipients_in_outbox(workspace: Workspace) -> Counter[str]:
    seen: Counter[str] = Counter()
    for path in outbox_dir(workspace).glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        seen[message["To"].addresses[0].addr_spec] += 1
    return seen


def _readers(workspace: Workspace, count: int) -> set[str]:
    addresses = {f"reader{n:03d}@example.org" for n in range(count)}
    with open_store_for(workspace) as store:
        store.import_batch(
            [ImportRow(email=a) for a in sorted(addresses)],
            list_name="main",
            consent=Consent(source="import"),
        )
        store.add_pending(
            "unconfirmed@example.org", list_name="main", consent=Consent(source="web")
        )
        store.add("gone@example.org", list_name="main", consent=Consent(source="cli"))
        store.unsubscribe("gone@example.org", list_name="main", consent=Consent(source="web"))
    return addresses


def test_a_due_send_reaches_every_active_member_once_and_nobody_else(
    workspace: Workspace,
) -> None:
    readers = _readers(workspace, 12)
    folder = _issue(workspace)
    with time_machine.travel(BEFORE, tick=False):
        scheduled = schedule_send(workspace, folder, "2026-12-01 08:00")
    with time_machine.travel(DUE, tick=True):
        report = run_due(workspace)
        again = run_due(workspace)
    assert [sid for sid, _ in report.done] == [scheduled.id], report.lines()
    assert not again.done and not again.failed
    assert _recipients_in_outbox(workspace) == Counter(dict.fromkeys(readers, 1))
    with open_store_for(workspace) as store:
        stored = get_schedule(store, scheduled.id)
    assert stored is not None and stored.state == "done" and "12" in stored.note


def test_a_send_whose_process_died_part_way_is_finished_without_duplicates(
    workspace: Workspace,
) -> None:
    readers = _readers(workspace, 60)
    folder = _issue(workspace)
    with time_machine.travel(BEFORE, tick=False):
        scheduled = schedule_send(workspace, folder, "2026-12-01 08:00")
    with time_machine.travel(DUE, tick=True) as clock:
        # the first serve process claims the send, sends part of it, and dies
        with open_store_for(workspace) as store:
            assert claim_schedule(store, scheduled, "dead-host:1:1", datetime.now(UTC))
        stop = threading.Event()
        first = send_issue(
            workspace,
            folder,
            list_name="main",
            connections=1,
            progress=lambda progress: stop.set() if progress.sent >= 10 else None,
            stop=stop,
        )
        sent_before = sum(_recipients_in_outbox(workspace).values())
        assert first.interrupted and 10 <= sent_before < len(readers)
        # another process finds it silent past the stale limit and takes it over
        clock.shift(600)
        report = run_due(workspace, worker="rescuer:2:2")
    assert [sid for sid, _ in report.done] == [scheduled.id], report.lines()
    assert _recipients_in_outbox(workspace) == Counter(dict.fromkeys(readers, 1))
    with open_store_for(workspace) as store:
        stored = get_schedule(store, scheduled.id)
    assert stored is not None and stored.state == "done" and stored.attempts == 2


class _HoldFirst:
    """aiosmtpd handler: records recipients, holds the first message until ``release``."""

    def __init__(self) -> None:
        self.recipients: list[str] = []
        self.first = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.extend(envelope.rcpt_tos)
        if not self.first.is_set():
            self.first.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return "250 2.0.0 taken"


def test_a_send_stopped_by_shutdown_goes_back_to_the_queue_and_resumes(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = _HoldFirst()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k")
        monkeypatch.setenv("NEWSLETTER_SMTP_URL", f"smtp://127.0.0.1:{port}")
        ws = load_workspace(workspace_dir)
        readers = _readers(ws, 20)
        folder = _issue(ws)
        with time_machine.travel(BEFORE, tick=False):
            scheduled = schedule_send(ws, folder, "2026-12-01 08:00")
        with time_machine.travel(DUE, tick=True):
            stop = threading.Event()
            reports: list[RunReport] = []
            tick = threading.Thread(target=lambda: reports.append(run_due(ws, stop=stop)))
            tick.start()
            assert handler.first.wait(30), "the send never reached the server"
            stop.set()  # serve is shutting down
            handler.release.set()
            tick.join(60)
            with open_store_for(ws) as store:
                paused = get_schedule(store, scheduled.id)
            assert paused is not None and paused.state == "scheduled"
            assert "interrupted" in paused.note and reports[0].done == []
            assert len(handler.recipients) < len(readers)
            resumed = run_due(ws)  # the next start
        assert [sid for sid, _ in resumed.done] == [scheduled.id]
        assert Counter(handler.recipients) == Counter(dict.fromkeys(readers, 1))
    finally:
        handler.release.set()
        controller.stop()
