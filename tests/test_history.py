"""``newsletter history``: one line per sent issue, from a real SQLite store.

Two issues go to list main through a real aiosmtpd server on loopback (the first with an
unknown outcome, a deferral and a 5xx; the second stopped midway and resumed, with an
unsubscribe between its enqueue and its turn), one to a second list. Then what comes
back is built from the messages the server received: a DSN and an ARF complaint about
the first issue, a DSN carrying only the original's Message-ID about the second, a
one-click POST to a real ``serve`` on loopback with a first-issue link, and a mailto
request with a second-issue token. Each line shows its own figures.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import Engine, event

from ledger_server import DROP_AFTER, FAST, LedgerHandler, LedgerServer, add_members, write_issue
from newsletter.audience.bounces.run import process_paths
from newsletter.audience.importing import import_file
from newsletter.cli import cli
from newsletter.deliver import dry_run, send_issue, send_test
from newsletter.deliver.history import HistoryLine, history_table, issue_history
from newsletter.errors import StoreError
from newsletter.store import Consent, ImportRow, open_store_for
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace

ADA, GRACE, LINUS, INES, KOFI = (
    "ada.lovelace@example.com",
    "grace.hopper@example.net",
    "linus.t@example.org",
    "ines.gomez@example.com",
    "kofi.mensah@example.net",
)
FIRST_AT = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
# 23:30 UTC is already the next day in Europe/Berlin, the sample's zone
SECOND_AT = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
SIDE_AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[LedgerServer]:
    controller = LedgerServer(LedgerHandler())
    controller.start()
    yield controller
    controller.stop()


def received(server: LedgerServer, rcpt: str) -> tuple[str, EmailMessage]:
    """(MAIL FROM, parsed message) of the last message the server took for ``rcpt``."""
    handler = server.handler
    assert isinstance(handler, LedgerHandler)
    mail_from, _, data = [m for m in handler.received if m[1] == rcpt][-1]
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return mail_from, message


def returned_headers(original: EmailMessage, *, with_link: bool = True) -> str:
    names = ["Date", "From", "To", "Subject", "Message-ID"]
    if with_link:
        names.append("List-Unsubscribe")
    return "".join(f"{name}: {original[name]}\n" for name in names)


def dsn(verp: str, rcpt: str, original: EmailMessage, status: str, *, with_link: bool) -> bytes:
    """A Postfix-style delivery status notification about ``original``."""
    action = "failed" if status.startswith("5") else "delayed"
    return (
        f"Delivered-To: {verp}\nFrom: MAILER-DAEMON@mx.example.net\nTo: {verp}\n"
        f"Date: {format_datetime(datetime.now(UTC))}\n"
        f"Message-ID: {make_msgid(domain='mx.example.net')}\nSubject: Undelivered Mail\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nNot delivered.\n\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nAction: {action}\nStatus: {status}\n\n"
        "--b\nContent-Type: text/rfc822-headers\n\n"
        f"{returned_headers(original, with_link=with_link)}\n--b--\n"
    ).encode()


def complaint(verp: str, rcpt: str, original: EmailMessage) -> bytes:
    """An ARF abuse report with ``original``'s headers attached."""
    return (
        "Delivered-To: fbl@example.org\nFrom: fbl@isp.example.com\nTo: fbl@example.org\n"
        f"Date: {format_datetime(datetime.now(UTC))}\n"
        f"Message-ID: {make_msgid(domain='isp.example.com')}\nSubject: FW: complaint\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="a"\n\n'
        "--a\nContent-Type: text/plain\n\nA user marked this as spam.\n\n"
        "--a\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nVersion: 1\n"
        f"Original-Mail-From: <{verp}>\nOriginal-Rcpt-To: <{rcpt}>\n\n"
        "--a\nContent-Type: message/rfc822\n\n"
        f"Return-Path: <{verp}>\n{returned_headers(original)}\nHello.\n\n--a--\n"
    ).encode()


def mailto_request(sender: str, original: EmailMessage) -> bytes:
    """What a mail client sends when its user follows the mailto: of ``original``."""
    uris = [part.strip().strip("<>") for part in str(original["List-Unsubscribe"]).split(",")]
    mailto = urlsplit(next(uri for uri in uris if uri.startswith("mailto:")))
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mailto.path
    message["Subject"] = parse_qs(mailto.query)["subject"][0]
    message["Message-ID"] = make_msgid(domain="client.example.net")
    message.set_content("")
    return message.as_bytes()


def https_link(original: EmailMessage) -> str:
    header = str(original["List-Unsubscribe"])
    return next(p.strip().strip("<>") for p in header.split(",") if "/u/" in p)


def one_click(ws: Workspace, link: str) -> None:
    """POST the one-click form to a real ``serve`` on loopback."""
    with open_store_for(ws) as store:
        serving = ServeServer(ws, store=store, scheduler=False)
        serving.start_in_thread()
        try:
            path = urlsplit(link).path
            answer = httpx.post(
                f"{serving.url}{path}", data={"List-Unsubscribe": "One-Click"}, timeout=10
            )
        finally:
            serving.stop()
    assert answer.status_code == 200


def process(ws: Workspace, folder: Path, name: str, data: bytes) -> None:
    path = folder / name
    path.write_bytes(data)
    report = process_paths(ws, [path])
    assert not report.incomplete and not report.unclassified


@pytest.fixture(params=["sqlite", "postgresql"])
def base(request: pytest.FixtureRequest, ws: Workspace) -> Workspace:
    """The sample workspace with its five subscribers, on SQLite or on PostgreSQL (the
    unsubscribe count reads a JSON field: json_extract there, ->> here)."""
    if request.param == "sqlite":
        return ws
    pytest.importorskip("psycopg")
    url = request.getfixturevalue("pg_url")
    on_pg = Workspace(ws.root, ws.config, replace(ws.env, database_url=url))
    with open_store_for(on_pg) as store:
        import_file(
            store, ws.root / "subscribers" / "subscribers.csv", list_name=None, default_list="main"
        )
    return on_pg


@pytest.fixture
def sent(base: Workspace, server: LedgerServer, tmp_path: Path) -> Workspace:
    """The workspace after the three campaigns and everything that came back."""
    ws = base
    readers = add_members(ws, 3)  # reader000..002, after the five sample subscribers
    handler = server.handler
    assert isinstance(handler, LedgerHandler)
    first = write_issue(ws.root, "2026-11-20-first")
    second = write_issue(ws.root, "2026-11-27-second", intro="The second week.")
    handler.data_script.append(DROP_AFTER)  # Ada's message: taken, no reply -> unknown
    handler.rcpt_replies[GRACE] = "550 5.1.1 no such user"
    handler.rcpt_replies[KOFI] = "451 4.2.1 mailbox busy"
    with time_machine.travel(FIRST_AT, tick=True):
        send_issue(ws, first, smtp_url=server.url, connections=1, tuning=FAST)
        verp, original = received(server, LINUS)
        process(ws, tmp_path, "hard.eml", dsn(verp, LINUS, original, "5.1.1", with_link=True))
        verp, original = received(server, INES)
        process(ws, tmp_path, "arf.eml", complaint(verp, INES, original))
        one_click(ws, https_link(received(server, readers[0])[1]))
    # neither a test copy nor a dry run is a campaign
    send_test(ws, second, [ADA])
    dry_run(ws, second, tmp_path / "dry")

    del handler.rcpt_replies[KOFI]
    stop = threading.Event()

    def midway(count: int, rcpt: str) -> None:
        if rcpt == ADA:  # reader002 leaves after the enqueue, before their turn
            with open_store_for(ws) as store:
                store.unsubscribe(readers[2], consent=Consent(source="cli"), list_name="main")
        elif rcpt == KOFI:
            stop.set()

    handler.after_store = midway
    with time_machine.travel(SECOND_AT, tick=True):
        stopped = send_issue(ws, second, smtp_url=server.url, connections=1, stop=stop, tuning=FAST)
        assert stopped.interrupted and stopped.state == "stopped"
        handler.after_store = None
        resumed = send_issue(ws, second, smtp_url=server.url, connections=1, tuning=FAST)
        assert resumed.resumed and resumed.state == "finished"
        verp, original = received(server, readers[1])
        soft = dsn(verp, readers[1], original, "4.2.2", with_link=False)  # Message-ID only
        process(ws, tmp_path, "soft.eml", soft)
        process(ws, tmp_path, "mailto.eml", mailto_request(KOFI, received(server, KOFI)[1]))

    with open_store_for(ws) as store:
        store.import_batch(
            [ImportRow(email="side@example.org", line=1)],
            list_name="side",
            consent=Consent(source="import"),
        )
    with time_machine.travel(SIDE_AT, tick=True):
        send_issue(ws, first, list_name="side", smtp_url=server.url, tuning=FAST)
    return ws


def figures(line: HistoryLine) -> tuple[int, ...]:
    return (
        line.recipients,
        line.sent,
        line.failed,
        line.deferred,
        line.unknown,
        line.skipped,
        line.bounces,
        line.complaints,
        line.unsubscribes,
    )


def test_each_sent_issue_is_one_line_with_its_own_figures_newest_first(sent: Workspace) -> None:
    side, second, first = issue_history(sent)

    assert (first.issue, first.list_name) == ("issues/2026-11-20-first", "main")
    # 8 members: Ada unknown, Grace 550 (failed), Kofi 451 (deferred); then Linus's DSN,
    # Ines's complaint and reader000's one-click unsubscribe come back
    assert figures(first) == (8, 5, 1, 1, 1, 0, 1, 1, 1)
    assert first.state == "waiting" and first.finished_at is None
    # stopped and resumed, still one line: the four still sendable, reader002 skipped;
    # reader001's delay report names only the Message-ID, Kofi left by mailto
    assert (second.issue, second.list_name) == ("issues/2026-11-27-second", "main")
    assert figures(second) == (4, 3, 0, 0, 0, 1, 1, 0, 1)
    assert second.state == "finished" and second.finished_at is not None
    assert (side.list_name, figures(side)) == ("side", (1, 1, 0, 0, 0, 0, 0, 0, 0))
    assert first.subject == "Harbour notes for %%first_name%%"  # slots shown as written
    assert first.started_at < second.started_at < side.started_at


def test_the_table_fits_100_columns_with_local_dates_and_the_state_of_unfinished_sends(
    sent: Workspace,
) -> None:
    table = history_table(issue_history(sent), sent.config.publication.timezone)

    assert max(len(row) for row in table) <= 100
    header, side, second, first = table
    assert header.split() == [
        *("date", "list", "subject", "rcpt", "sent", "failed", "defer", "unkn", "skip"),
        *("bounce", "compl", "unsub"),
    ]
    assert second.split()[:2] == ["2026-11-28", "main"]  # 23:30 UTC is Saturday in Berlin
    assert second.split()[-9:] == ["4", "3", "0", "0", "0", "1", "1", "0", "1"]
    # the subject is cut to fit, the state of the unfinished send stays
    assert first.startswith("2026-11-20 main Harbour notes for %%f… [waiting] ")
    assert first.split()[-9:] == ["8", "5", "1", "1", "1", "0", "1", "1", "1"]
    assert side.split()[:2] == ["2026-11-29", "side"]


def test_cli_json_parses_with_stable_keys_and_list_filters(sent: Workspace) -> None:
    runner = CliRunner(env={"NEWSLETTER_DATABASE_URL": sent.env.database_url})
    result = runner.invoke(cli, ["-w", str(sent.root), "history", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [item["issue"] for item in data] == [
        "issues/2026-11-20-first",
        "issues/2026-11-27-second",
        "issues/2026-11-20-first",
    ]
    assert list(data[1]) == [
        *("campaign_id", "issue", "list", "subject", "state", "started_at", "finished_at"),
        *("recipients", "sent", "failed", "deferred", "unknown", "skipped", "pending"),
        *("bounces", "complaints", "unsubscribes"),
    ]
    started = datetime.fromisoformat(data[1]["started_at"])
    assert started.utcoffset() is not None and started.date().isoformat() == "2026-11-27"
    assert data[2]["finished_at"] is None and data[2]["state"] == "waiting"

    main = runner.invoke(cli, ["-w", str(sent.root), "history", "--list", "main"])
    assert main.exit_code == 0 and len(main.output.splitlines()) == 3
    assert all(" main " in line for line in main.output.splitlines()[1:])
    side = json.loads(
        runner.invoke(cli, ["-w", str(sent.root), "history", "--list", "side", "--json"]).output
    )
    assert [item["list"] for item in side] == ["side"]


def test_an_unknown_list_is_a_one_line_error_and_nothing_sent_yet_says_so(ws: Workspace) -> None:
    with pytest.raises(StoreError, match="no list named 'weekly'") as info:
        issue_history(ws, "weekly")
    assert info.value.hint == "lists here: main"
    command = [
        sys.executable,
        "-m",
        "newsletter",
        "-w",
        str(ws.root),
        "history",
        "--list",
        "weekly",
    ]
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "test-key-not-secret"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "error: no list named 'weekly' (lists here: main)\n"
    runner = CliRunner()
    empty = runner.invoke(cli, ["-w", str(ws.root), "history"])
    assert (empty.exit_code, empty.output) == (0, "no issues sent yet\n")
    assert json.loads(runner.invoke(cli, ["-w", str(ws.root), "history", "--json"]).output) == []


def test_control_characters_in_a_subject_never_reach_the_terminal() -> None:
    line = HistoryLine(
        campaign_id=1,
        issue="issues/x",
        list_name="main\x1b]0;owned\x07",
        subject="Top story\x1b[2J\r\u202eevil",
        state="finished",
        started_at=FIRST_AT,
        finished_at=FIRST_AT,
    )
    [_, row] = history_table([line], "UTC")
    assert row.isprintable() and "Top story[2Jevil" in row


def test_a_message_id_names_a_campaign_only_for_the_subscriber_it_was_sent_to(
    ws: Workspace, server: LedgerServer, tmp_path: Path
) -> None:
    send_issue(ws, write_issue(ws.root), smtp_url=server.url, tuning=FAST)
    verp, original = received(server, LINUS)
    _, other = received(server, KOFI)
    original.replace_header("Message-ID", other["Message-ID"])  # Kofi's row, not Linus's
    process(ws, tmp_path, "hard.eml", dsn(verp, LINUS, original, "5.1.1", with_link=False))
    # a relay that rewrote the Message-ID: the signed link still names the campaign
    verp, original = received(server, INES)
    original.replace_header("Message-ID", "<0100018c@relay.example.com>")
    process(ws, tmp_path, "arf.eml", complaint(verp, INES, original))

    [line] = issue_history(ws)
    assert (line.bounces, line.complaints) == (0, 1)
    with open_store_for(ws) as store:
        linus = store.get_by_email(LINUS)
    assert linus is not None and linus.status == "bounced"  # recorded, tied to no campaign


def test_one_query_per_figure_whatever_the_number_of_campaigns(sent: Workspace) -> None:
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        lines = issue_history(sent)
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert len(lines) == 3
    selects = [s for s in statements if s.startswith("SELECT")]
    for table in ("deliveries", "bounce_reports", "consents"):
        assert sum(f"FROM {table}" in s for s in selects) == 1, table
