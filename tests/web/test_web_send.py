"""An unsubscribe answered while a send is running excludes the address from the rest of
that run (endpoint and ledger together): the real app, the real ledger
(``deliver.send_issue``) and a real SMTP server on loopback that holds the first message
until the unsubscribe has been answered."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from starlette.testclient import TestClient

from newsletter.compose.folder import write_issue_folder
from newsletter.compose.issue_file import parse_issue
from newsletter.deliver import send_issue
from newsletter.mail.tokens import make_unsubscribe_token
from newsletter.render.pipeline import render_issue
from newsletter.store import Consent, ImportRow, open_store_for
from newsletter.web import create_app
from newsletter.workspace import Workspace, load_workspace

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sample_issue.json"


class HoldingServer:
    """aiosmtpd handler: records recipients; holds the first DATA until ``release``."""

    def __init__(self) -> None:
        self.recipients: list[str] = []
        self.first_arrived = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.extend(envelope.rcpt_tos)
        if not self.first_arrived.is_set():
            self.first_arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return "250 2.0.0 taken"


@pytest.fixture
def smtp() -> Iterator[tuple[HoldingServer, int]]:
    handler = HoldingServer()
    with socket.socket() as probe:  # aiosmtpd's Controller cannot listen on port 0 itself
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        handler.release.set()
        controller.stop()


def _workspace_with_issue(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, port: int
) -> tuple[Workspace, Path]:
    """The workspace sending through the server on ``port``, and a rendered issue folder."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k")
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", f"smtp://127.0.0.1:{port}")
    ws = load_workspace(workspace_dir)
    issue = parse_issue(GOLDEN.read_text(encoding="utf-8"), GOLDEN)
    folder = ws.issues_dir / "2026-12-01-brief"
    write_issue_folder(folder, issue, render_issue(ws, issue))
    return ws, folder


def test_an_unsubscribe_answered_mid_send_excludes_the_address_from_the_rest_of_the_run(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, smtp: tuple[HoldingServer, int]
) -> None:
    handler, port = smtp
    ws, folder = _workspace_with_issue(workspace_dir, monkeypatch, port)
    addresses = [f"reader{n}@example.org" for n in range(8)]
    with open_store_for(ws) as store:
        store.import_batch(
            [ImportRow(email=a) for a in addresses], list_name="main", consent=Consent(source="cli")
        )
        leaving = store.get_by_email(addresses[-1])
        list_id = store.list_id("main")
        assert leaving is not None and list_id is not None
        token = make_unsubscribe_token(ws.secret_keys(), leaving.id, list_id)

        reports: list[Any] = []
        sender = threading.Thread(
            target=lambda: reports.append(send_issue(ws, folder, list_name="main", connections=1))
        )
        sender.start()
        try:
            assert handler.first_arrived.wait(30), "the send never reached the server"
            with TestClient(create_app(ws, store)) as client:
                answer = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 200
        finally:
            handler.release.set()
            sender.join(60)
    assert not sender.is_alive()
    assert addresses[-1] not in handler.recipients
    assert sorted(handler.recipients) == sorted(addresses[:-1])
    # serve marked the leaver's waiting row skipped; the sender never claimed it
    assert "(campaign: 7 of 8 sent)" in reports[0].summary()


class _Waiting(logging.Handler):
    """Sets ``waiting`` when serve logs that an answer waits for a message in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "with a message in flight: waiting" in record.getMessage():
            self.waiting.set()


def test_the_answer_waits_for_the_message_already_in_flight_to_that_reader(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, smtp: tuple[HoldingServer, int]
) -> None:
    """The first reader's message is held in the server's DATA when they unsubscribe: the
    unsubscribe commits at once, but the 200 comes only after the server answered."""
    handler, port = smtp
    ws, folder = _workspace_with_issue(workspace_dir, monkeypatch, port)
    addresses = [f"reader{n}@example.org" for n in range(3)]
    watcher = _Waiting()
    logger = logging.getLogger("newsletter.web.unsubscribe")
    logger.addHandler(watcher)
    monkeypatch.setattr(logger, "level", logging.DEBUG)
    with open_store_for(ws) as store:
        store.import_batch(
            [ImportRow(email=a) for a in addresses], list_name="main", consent=Consent(source="cli")
        )
        first = store.get_by_email(addresses[0])
        list_id = store.list_id("main")
        assert first is not None and list_id is not None
        token = make_unsubscribe_token(ws.secret_keys(), first.id, list_id)
        sender = threading.Thread(
            target=lambda: send_issue(ws, folder, list_name="main", connections=1)
        )
        sender.start()
        answers: list[Any] = []
        try:
            assert handler.first_arrived.wait(30), "the send never reached the server"
            assert handler.recipients == [addresses[0]]  # held in DATA: in flight
            with TestClient(create_app(ws, store)) as client:
                poster = threading.Thread(
                    target=lambda: answers.append(
                        client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
                    )
                )
                poster.start()
                assert watcher.waiting.wait(30), "the answer did not wait for the message"
                assert poster.is_alive() and not answers  # committed, not answered yet
                with store.read() as conn:  # committed before the wait
                    assert store.list_members(conn, [first.id])[(first.id, list_id)].has_left
                handler.release.set()
                poster.join(30)
        finally:
            handler.release.set()
            sender.join(60)
            logger.removeHandler(watcher)
    assert [answer.status_code for answer in answers] == [200]
    assert sorted(handler.recipients) == sorted(addresses)  # the held one went before
