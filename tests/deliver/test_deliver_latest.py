"""``send --latest`` (deliver/latest.py): the newest issue folder not yet sent to the list."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from ledger_server import (
    FAST,
    LedgerServer,
    write_issue,
)
from newsletter.compose.build import compose_issue
from newsletter.compose.folder import render_issue_folder
from newsletter.deliver import (
    latest_issue,
    send_issue,
)
from newsletter.errors import NewsletterError
from newsletter.store import open_store_for
from newsletter.workspace import Workspace


def test_latest_is_the_newest_issue_not_yet_sent_whatever_was_touched(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    """--latest goes by the issue's date, not by when a file changed: touching an old
    issue does not make it the latest; a fully sent issue is passed over."""
    older = write_issue(ws.root, "2026-11-20-harbour")
    data = json.loads((older / "issue.json").read_text(encoding="utf-8"))
    (older / "issue.json").write_text(json.dumps({**data, "date": "2026-11-20"}), "utf-8")
    future = datetime.now(UTC).timestamp() + 3600
    os.utime(older / "issue.json", (future, future))  # edited (or touched) last
    assert latest_issue(ws) == issue
    send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert latest_issue(ws) == older  # the newest one is sent: the next unsent
    with open_store_for(ws) as store:
        store.ensure_list("weekly")
    assert latest_issue(ws, "weekly") == issue  # never sent to that list
    send_issue(ws, older, smtp_url=server.url, tuning=FAST)
    with pytest.raises(NewsletterError, match="already sent to list 'main'") as info:
        latest_issue(ws)
    assert "compose a new issue" in str(info.value.hint)


def test_latest_names_an_issue_whose_date_cannot_be_read(ws: Workspace, issue: Path) -> None:
    broken = ws.root / "issues" / "2026-11-30-draft"
    broken.mkdir()
    (broken / "issue.json").write_text('{"subject": "half written"', encoding="utf-8")
    with pytest.raises(NewsletterError, match=r"2026-11-30-draft/issue\.json: cannot read"):
        latest_issue(ws)


def _compose_at(ws: Workspace, when: str, name: str) -> Path:
    """Compose the seeds into issues/<name> with the clock at ``when`` -> the folder."""
    with time_machine.travel(when, tick=False):
        return compose_issue(
            ws,
            [str(ws.root / "seeds")],
            subject=None,
            intro="",
            preheader="",
            out=ws.issues_dir / name,
            skip_bad=False,
            allow_repeats=True,
        ).folder


def test_latest_of_one_date_is_the_issue_composed_last_not_the_last_name(
    ws: Workspace,
) -> None:
    """Three issues of one date, composed in an order that is not their names' order:
    --latest picks the one composed last, and a re-render does not change that."""
    _compose_at(ws, "2026-12-04 08:00Z", "2026-12-04-limited")
    last = _compose_at(ws, "2026-12-04 10:00Z", "2026-12-04-since-date")
    _compose_at(ws, "2026-12-04 09:00Z", "2026-12-04-since-last")
    assert latest_issue(ws) == last
    with time_machine.travel("2026-12-04 11:00Z", tick=False):
        render_issue_folder(ws, ws.issues_dir / "2026-12-04-since-last")
    assert latest_issue(ws) == last


def test_latest_refuses_issues_of_one_date_it_cannot_order(ws: Workspace) -> None:
    """Issues of one date that compose did not record (copied in) are named, none picked."""
    write_issue(ws.root, "2026-12-04-b")
    write_issue(ws.root, "2026-12-04-a")
    with pytest.raises(NewsletterError, match="2026-12-04-a, 2026-12-04-b") as info:
        latest_issue(ws)
    assert "newsletter send ISSUE_DIR" in str(info.value.hint)
