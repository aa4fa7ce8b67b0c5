"""Runs of a campaign (deliver/send.py) against a real aiosmtpd server on loopback and a
real SQLite file: whole sends, stops and resumes, crash leftovers, retries of failed rows,
who is sent to, the lock on a campaign, the scheduler's entry point."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from ledger_server import (
    FAST,
    SAMPLE,
    LedgerServer,
    add_members,
    bodies,
    handler_of,
    ledger,
    parsed,
)
from newsletter.deliver import (
    plan_send,
    send_issue,
)
from newsletter.errors import AlreadySentError, NewsletterError
from newsletter.mail.headers import ONE_CLICK
from newsletter.mail.tokens import UnsubscribeTokens
from newsletter.store import Consent, open_store_for
from newsletter.store.campaigns import campaigns
from newsletter.store.deliveries import deliveries
from newsletter.store.ledger import LedgerSession
from newsletter.workspace import Workspace

# --- a whole send -----------------------------------------------------------------------------


def test_full_send_reaches_each_subscriber_once_personalised(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    report = send_issue(ws, issue, smtp_url=server.url, tuning=FAST)

    handler = handler_of(server)
    assert handler.per_address() == Counter(dict.fromkeys(SAMPLE, 1))
    assert (report.sent, report.failed, report.deferred, report.skipped) == (5, 0, 0, 0)
    assert report.state == "finished" and report.campaign_id is not None
    tokens = UnsubscribeTokens(ws.secret_keys())
    with open_store_for(ws) as store:
        list_id = store.list_id("main")
        ids = {address: store.get_by_email(address).id for address in SAMPLE}  # type: ignore[union-attr]
    message_ids = set()
    for mail_from, rcpt, data in handler.received:
        message = parsed(data)
        text, _ = bodies(message)
        assert SAMPLE[rcpt] in text and SAMPLE[rcpt] in message["To"]
        assert message["Subject"] == f"Harbour notes for {SAMPLE[rcpt].split()[0]}"
        # one https List-Unsubscribe, the one-click header byte-exact
        assert len(message.get_all("List-Unsubscribe") or []) == 1
        assert data.count(f"List-Unsubscribe-Post: {ONE_CLICK}\r\n".encode()) == 1
        url = message["List-Unsubscribe"].split(",")[0].strip("<> ")
        assert url.startswith(ws.base_url + "/u/")
        claim = tokens.read(url.rsplit("/", 1)[1])
        assert (claim.subscriber_id, claim.list_id, claim.campaign_id) == (
            ids[rcpt],
            list_id,
            report.campaign_id,
        )
        assert url in text  # the same link in the body
        assert ws.config.publication.postal_address in text  # the footer shows it
        assert mail_from.startswith("bounces+") and "@example.org" in mail_from
        message_ids.add(message["Message-ID"])
    assert len(message_ids) == 5
    assert set(ledger(ws).values()) == {("sent", 1, 250)}


def test_the_data_subject_export_lists_the_messages_sent(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    with open_store_for(ws) as store:
        data = store.describe("ada.lovelace@example.com")
    assert data is not None
    [sent] = data["deliveries"]
    assert sent["issue"] == issue.name and sent["status"] == "sent"
    assert sent["address"] == "ada.lovelace@example.com" and sent["reply"].startswith("250")
    json.dumps(data)  # JSON-ready


def test_a_finished_send_never_goes_out_again(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    with pytest.raises(AlreadySentError, match="already sent to list 'main'") as info:
        send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert "compose a new issue" in str(info.value)
    # the same folder named another way is the same campaign
    with pytest.raises(AlreadySentError):
        send_issue(ws, issue.resolve(), smtp_url=server.url, tuning=FAST)
    assert sum(handler_of(server).per_address().values()) == 5
    assert plan_send(ws, issue).state == "finished"


def test_embedded_server_when_no_smtp_url(ws: Workspace, issue: Path) -> None:
    assert plan_send(ws, issue).target.startswith("the embedded local SMTP server")
    report = send_issue(ws, issue, tuning=FAST)
    assert report.outbox == ws.root / "outbox"
    stored = sorted(report.outbox.glob("*.eml"))
    assert len(stored) == 5
    assert {parsed(path.read_bytes())["To"].addresses[0].addr_spec for path in stored} == set(
        SAMPLE
    )


# --- resuming -------------------------------------------------------------------------------


def test_stop_mid_send_then_rerun_delivers_the_rest_once(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    add_members(ws, 15)
    stop = threading.Event()

    def progress(p: Any) -> None:
        if p.sent >= 4:
            stop.set()

    first = send_issue(
        ws, issue, smtp_url=server.url, connections=2, progress=progress, stop=stop, tuning=FAST
    )
    assert first.interrupted and first.state == "stopped"
    assert 4 <= first.sent < 20
    statuses = Counter(status for status, _, _ in ledger(ws).values())
    assert statuses["sending"] == 0 and statuses["sent"] == first.sent
    assert plan_send(ws, issue).state == "resume"

    second = send_issue(ws, issue, smtp_url=server.url, connections=2, tuning=FAST)
    assert second.resumed and second.sent == 20 - first.sent and second.state == "finished"
    counts = handler_of(server).per_address()
    assert len(counts) == 20 and set(counts.values()) == {1}


def test_sigterm_stops_like_ctrl_c_and_a_cut_short_step_releases_its_lock(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """A service manager's SIGTERM finishes the messages in flight (it used to kill the
    run like a crash); a step interrupted inside its transaction is rolled back on close,
    so the run's own cleanup is not locked out of the database."""
    add_members(ws, 15)

    def terminate_after_four(count: int, rcpt: str) -> None:
        if count == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    handler_of(server).after_store = terminate_after_four
    previous = signal.getsignal(signal.SIGTERM)
    first = send_issue(
        ws, issue, smtp_url=server.url, connections=2, handle_sigint=True, tuning=FAST
    )
    assert signal.getsignal(signal.SIGTERM) is previous  # handler restored
    assert first.interrupted and first.state == "stopped" and 4 <= first.sent < 20
    assert Counter(status for status, _, _ in ledger(ws).values())["sending"] == 0

    with open_store_for(ws) as store:
        session = LedgerSession(store, first.campaign_id or 0, store.list_id("main") or 0)
        raw = session._conn.connection.dbapi_connection  # the step's own connection
        assert raw is not None
        raw.execute("BEGIN IMMEDIATE")  # as if Ctrl-C landed between BEGIN and COMMIT
        session.close()
        with store.write() as conn:  # would wait for the busy timeout, then fail
            conn.execute(update(campaigns).values(runner=None))
    second = send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert second.sent == 20 - first.sent
    assert set(handler_of(server).per_address().values()) == {1}


def test_crash_leftovers_are_resent_and_nothing_else(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """What a kill -9 leaves (rows in ``sending``, a dead runner) is resumed: the rows in
    flight are sent again, rows recorded as sent never are."""
    add_members(ws, 10)
    stop = threading.Event()
    first = send_issue(
        ws,
        issue,
        smtp_url=server.url,
        connections=1,
        progress=lambda p: stop.set() if p.sent >= 6 else None,
        stop=stop,
        tuning=FAST,
    )
    in_flight = 3  # as if 3 connections had been mid-message at the kill
    with open_store_for(ws) as store, store.write() as conn:
        crashed = list(
            conn.scalars(
                select(deliveries.c.id).where(deliveries.c.status == "sent").limit(in_flight)
            )
        )
        conn.execute(
            update(deliveries).where(deliveries.c.id.in_(crashed)).values(status="sending")
        )
        dead = f"{socket.gethostname()}:{2**22 + 12345}"  # no such process
        conn.execute(
            update(campaigns).values(state="running", runner=dead, heartbeat_at=datetime.now(UTC))
        )

    second = send_issue(ws, issue, smtp_url=server.url, connections=3, tuning=FAST)
    assert second.recovered == in_flight
    assert second.sent == 15 - first.sent + in_flight and second.state == "finished"
    counts = handler_of(server).per_address()
    assert len(counts) == 15  # nobody missed
    assert sum(n - 1 for n in counts.values()) == in_flight  # duplicates: only those in flight


def test_retry_failed_requeues_only_failed_rows(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    handler = handler_of(server)
    handler.rcpt_replies["linus.t@example.org"] = "554 5.7.1 message refused by policy"
    handler.rcpt_replies["grace.hopper@example.net"] = "550 5.1.1 no such user here"
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    handler.rcpt_replies.clear()
    with pytest.raises(AlreadySentError, match="2 failed") as info:
        send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert "--retry-failed" in str(info.value)
    assert plan_send(ws, issue, retry_failed=True).recipients == 2

    again = send_issue(ws, issue, smtp_url=server.url, retry_failed=True, tuning=FAST)
    # the policy-blocked one is delivered now; the bounced one stays suppressed
    assert (again.sent, again.skipped, again.requeued) == (1, 1, 2)
    counts = handler.per_address()
    assert counts["linus.t@example.org"] == 1 and "grace.hopper@example.net" not in counts
    assert set(counts.values()) == {1}


def test_retries_of_an_issue_never_sent_and_an_empty_list_name_are_refused(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    for failed, unknown in ((True, False), (False, True)):
        with pytest.raises(NewsletterError, match="never sent to list 'main'"):
            send_issue(
                ws,
                issue,
                smtp_url=server.url,
                tuning=FAST,
                retry_failed=failed,
                retry_unknown=unknown,
            )
    with pytest.raises(NewsletterError, match="list name is empty"):
        send_issue(ws, issue, list_name=" ", smtp_url=server.url, tuning=FAST)
    with pytest.raises(NewsletterError, match=r"no list named 'weekly' \(lists: 'main'\)"):
        send_issue(ws, issue, list_name="weekly", smtp_url=server.url, tuning=FAST)
    assert handler_of(server).received == []


def test_pending_members_never_receive(ws: Workspace, issue: Path, server: LedgerServer) -> None:
    with open_store_for(ws) as store:
        store.add_pending("waiting@example.org", list_name="main", consent=Consent(source="web"))
    assert plan_send(ws, issue).recipients == 5
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert "waiting@example.org" not in handler_of(server).per_address()
    assert "waiting@example.org" not in ledger(ws)


def test_erasing_a_subscriber_scrubs_the_ledger(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    with open_store_for(ws) as store:
        store.erase("ada.lovelace@example.com", consent=Consent(source="cli"))
    rows = ledger(ws)
    assert "ada.lovelace@example.com" not in rows and rows[None][0] == "sent"  # type: ignore[index]


def test_a_scheduled_send_runs_through_the_ledger(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    from newsletter.schedule.due import run_due
    from newsletter.schedule.scheduled import schedule_send

    ws = Workspace(ws.root, ws.config, replace(ws.env, smtp_url=server.url))
    now = datetime.now(UTC)
    schedule_send(ws, issue, f"{now:%Y-%m-%d %H:%M} UTC")  # this minute: due at once
    report = run_due(ws)
    assert [note for _, note in report.done] == [
        "sent 5, failed 0, deferred 0, skipped 0, unknown 0"
    ]
    assert handler_of(server).per_address() == Counter(dict.fromkeys(SAMPLE, 1))
    assert not run_due(ws).acted  # nothing left to do, nothing sent twice
    assert sum(handler_of(server).per_address().values()) == 5
