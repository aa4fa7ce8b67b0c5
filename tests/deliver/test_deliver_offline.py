"""Sends that leave the ledger alone (deliver/offline.py): test sends and dry runs."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from ledger_server import (
    FAST,
    SAMPLE,
    LedgerServer,
    bodies,
    handler_of,
    parsed,
)
from newsletter.deliver import (
    dry_run,
    plan_send,
    send_issue,
    send_test,
)
from newsletter.errors import NewsletterError
from newsletter.mail.tokens import UnsubscribeTokens
from newsletter.store import open_store_for
from newsletter.store.campaigns import campaigns
from newsletter.store.deliveries import deliveries
from newsletter.workspace import Workspace

# --- test sends and dry runs ----------------------------------------------------------------


def test_test_send_reaches_anyone_and_records_nothing(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    report = send_test(
        ws, issue, ["Ada.Lovelace@example.com, editor@example.org"], smtp_url=server.url
    )
    assert report.test and report.sent == 2
    handler = handler_of(server)
    assert set(handler.per_address()) == {"ada.lovelace@example.com", "editor@example.org"}
    tokens = UnsubscribeTokens(ws.secret_keys())
    for _, rcpt, data in handler.received:
        message = parsed(data)
        assert message["Subject"].startswith("[TEST] Harbour notes")
        assert message["X-Newsletter-Test"] == "yes"
        url = message["List-Unsubscribe"].split(",")[0].strip("<> ")
        claim = tokens.read(url.rsplit("/", 1)[1])
        assert (claim.subscriber_id, claim.list_id) == (0, 0)  # names nobody
        if rcpt == "ada.lovelace@example.com":
            assert "Ada Lovelace" in bodies(message)[0]
    with open_store_for(ws) as store, store.read() as conn:
        assert conn.scalar(select(campaigns.c.id)) is None
        assert conn.scalar(select(deliveries.c.id)) is None
    with pytest.raises(NewsletterError, match="not-an-address"):
        send_test(ws, issue, ["not-an-address"], smtp_url=server.url)


def test_dry_run_writes_the_exact_messages_and_touches_no_server(
    ws: Workspace, issue: Path, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = probe.getsockname()[1]
    # a server URL nobody answers: the dry run must not need it
    ws = Workspace(ws.root, ws.config, replace(ws.env, smtp_url=f"smtp://127.0.0.1:{nowhere}"))
    out = tmp_path / "dry"
    report = dry_run(ws, issue, out)
    assert report.count == 5
    files = sorted(out.glob("*.eml"))
    assert [f.name.split("-")[0] for f in files] == [f"{n:07d}" for n in range(1, 6)]
    recipients = {parsed(f.read_bytes())["To"].addresses[0].addr_spec for f in files}
    assert recipients == set(SAMPLE)
    assert sum(f.stat().st_size for f in files) == report.bytes
    manifest = (out / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "file,subscriber_id,mail_from,rcpt_to" and len(manifest) == 6
    with open_store_for(ws) as store, store.read() as conn:
        assert conn.scalar(select(deliveries.c.id)) is None
    with pytest.raises(NewsletterError, match="not an empty folder"):
        dry_run(ws, issue, out)


def test_an_empty_list_is_refused_before_anything_is_recorded(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    with open_store_for(ws) as store:
        store.ensure_list("weekly")
    assert plan_send(ws, issue, "weekly").recipients == 0
    with pytest.raises(NewsletterError, match="'weekly' has nobody to send to"):
        send_issue(ws, issue, list_name="weekly", smtp_url=server.url, tuning=FAST)
    with open_store_for(ws) as store, store.read() as conn:
        assert conn.scalar(select(campaigns.c.id)) is None  # importing later still works
    # a dry run refuses alike, before it writes anything
    with pytest.raises(NewsletterError, match="'weekly' has nobody to send to"):
        dry_run(ws, issue, ws.root / "dry", "weekly")
    assert not (ws.root / "dry").exists()
