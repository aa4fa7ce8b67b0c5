"""What a send renders and checks before anything goes out (deliver/content.py): the HTML
size limits, the postal address of a commercial sender, and a fresh render sent as it is
without loading the render stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from ledger_server import (
    FAST,
    LedgerServer,
    handler_of,
    with_config,
    write_issue,
)
from newsletter.deliver import (
    plan_send,
    send_issue,
)
from newsletter.errors import ConfigError, RenderError
from newsletter.store import open_store_for
from newsletter.store.campaigns import campaigns
from newsletter.workspace import Workspace

# --- the sender rules checked before anything goes out -----------------------------------------


def _html_size(ws: Workspace, issue: Path) -> int:
    from newsletter.compose.issue_file import read_issue
    from newsletter.render.pipeline import render_issue

    return len(render_issue(ws, read_issue(issue)).html.encode())


def test_html_over_100kb_is_refused_and_over_90kb_warned(
    ws: Workspace, server: LedgerServer
) -> None:
    base = _html_size(ws, write_issue(ws.root, "probe"))
    word = "harbour "
    big = write_issue(ws.root, "big", intro=word * ((101 * 1024 - base) // len(word) + 10))
    with pytest.raises(RenderError, match="over the 100 KB limit"):
        send_issue(ws, big, smtp_url=server.url, tuning=FAST)
    with open_store_for(ws) as store, store.read() as conn:
        assert conn.scalar(select(campaigns.c.id)) is None
    near = write_issue(ws.root, "near", intro=word * ((95 * 1024 - base) // len(word)))
    assert 90 * 1024 < _html_size(ws, near) <= 100 * 1024
    report = send_issue(ws, near, smtp_url=server.url, tuning=FAST)
    assert report.sent == 5
    assert any("close to Gmail's clipping" in w for w in report.warnings)


def test_commercial_send_needs_a_postal_address(
    ws: Workspace, issue: Path, server: LedgerServer
) -> None:
    nowhere = with_config(ws, "publication", postal_address="")
    with pytest.raises(ConfigError, match=r"needs publication\.postal_address"):
        plan_send(nowhere, issue)
    with pytest.raises(ConfigError, match=r"needs publication\.postal_address"):
        send_issue(nowhere, issue, smtp_url=server.url, tuning=FAST)
    assert handler_of(server).received == []
    hobby = with_config(nowhere, "sender", commercial=False)
    assert send_issue(hobby, issue, smtp_url=server.url, tuning=FAST).sent == 5


# --- a fresh render is sent as it is, without loading the render stack ------------------------

# Imported only where needed (see render.py, message.py, smtp/embedded.py, issue.py): a send whose
# issue folder holds a fresh render, without DKIM, to NEWSLETTER_SMTP_URL, loads none of them.
HEAVY_MODULES = (
    "jinja2",
    "mjml",
    "premailer",
    "cssutils",
    "lxml",
    "requests",
    "aiosmtpd",
    "dkim",
    "dns",
    "trafilatura",
    "feedparser",
    "httpx",
    "markdown_it",
    "pysbd",
)
SEND_PATH_PROBE = """
import hashlib, json, sys
from pathlib import Path

heavy = sys.argv[3].split(",")
import newsletter.deliver
from newsletter.deliver.content import render_for_send
from newsletter.workspace import load_workspace

at_import = [name for name in heavy if name in sys.modules]
rendered, warnings = render_for_send(load_workspace(Path(sys.argv[1])), Path(sys.argv[2]))
print(json.dumps({
    "at_import": at_import,
    "after_render": [name for name in heavy if name in sys.modules],
    "html": hashlib.sha256(rendered.html.encode()).hexdigest(),
    "text": hashlib.sha256(rendered.text.encode()).hexdigest(),
    "subject": rendered.subject,
    "warnings": warnings,
}))
"""


def test_a_fresh_render_is_sent_as_rendered_without_the_render_stack(
    ws: Workspace, issue: Path, server: LedgerServer, tmp_path: Path
) -> None:
    import hashlib
    import shutil
    import subprocess
    import sys

    from newsletter.compose.folder import render_issue_folder
    from newsletter.deliver.content import render_for_send
    from newsletter.render.stamp import SEND_HTML, STAMP_FILE

    render_issue_folder(ws, issue)
    # same folder name: the mail's "View in your browser" link is made from it
    unstamped = tmp_path / "unstamped" / issue.name
    shutil.copytree(issue, unstamped)
    (unstamped / STAMP_FILE).unlink()
    fresh, fresh_warnings = render_for_send(ws, unstamped)  # renders: no stamp

    probe = subprocess.run(
        [sys.executable, "-c", SEND_PATH_PROBE, str(ws.root), str(issue), ",".join(HEAVY_MODULES)],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(probe.stdout)
    assert seen["at_import"] == [] and seen["after_render"] == []
    assert seen["html"] == hashlib.sha256((issue / SEND_HTML).read_bytes()).hexdigest()
    assert seen["html"] == hashlib.sha256(fresh.html.encode()).hexdigest()
    assert seen["text"] == hashlib.sha256(fresh.text.encode()).hexdigest()
    assert (seen["subject"], seen["warnings"]) == (fresh.subject, fresh_warnings)

    report = send_issue(ws, issue, smtp_url=server.url, tuning=FAST)
    assert report.sent == 5
    with open_store_for(ws) as store, store.read() as conn:
        stored = conn.execute(select(campaigns.c.html, campaigns.c.text)).one()
    assert (stored.html, stored.text) == (fresh.html, fresh.text)


# --- placeholders left from `newsletter init` ---------------------------------------------


def _new_workspace(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, Path]:
    """A fresh `newsletter init` workspace with one subscriber and its example issue."""
    from newsletter.audience.manage import add_subscriber
    from newsletter.compose.build import compose_issue
    from newsletter.init import init_workspace
    from newsletter.workspace import load_workspace

    init_workspace(root)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-key-not-secret")
    ws = load_workspace(root)
    with open_store_for(ws) as store:
        add_subscriber(store, "reader@example.net", list_name="main")
    folder = compose_issue(
        ws, [str(root / "seeds")], subject=None, intro="", preheader="", out=None, skip_bad=False
    ).folder
    return ws, folder


def test_a_real_send_is_refused_while_init_placeholders_remain(
    tmp_path: Path, server: LedgerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """To a real server (a send, its plan, a test send) the init placeholders are refused,
    naming each setting; nothing is recorded or sent. The local outbox and a dry run only
    warn; once the settings are the user's own, the real send goes out."""
    from newsletter.audience.manage import add_subscriber
    from newsletter.deliver import dry_run, send_test
    from newsletter.workspace import load_workspace

    ws, folder = _new_workspace(tmp_path / "new", monkeypatch)
    named = r"publication\.base_url, publication\.postal_address|postal_address, publication\.b"
    for attempt in (
        lambda: plan_send(ws, folder, smtp_url=server.url),
        lambda: send_issue(ws, folder, smtp_url=server.url, tuning=FAST),
        lambda: send_test(ws, folder, ["me@example.net"], smtp_url=server.url),
    ):
        with pytest.raises(ConfigError, match=named) as info:
            attempt()
        assert "lines marked CHANGE" in str(info.value.hint)
    assert handler_of(server).received == []
    with open_store_for(ws) as store, store.read() as conn:
        assert conn.execute(select(campaigns.c.id)).all() == []

    dry = dry_run(ws, folder, tmp_path / "dry")
    assert dry.count == 1 and any("publication.base_url" in w for w in dry.warnings)
    local = send_issue(ws, folder, tuning=FAST)
    assert local.sent == 1 and any("postal_address" in w for w in local.warnings)

    config = ws.root / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("CHANGE ME: Publisher name", "Example Media").replace(
        "https://newsletter.example.org", "https://news.example.net"
    )
    config.write_text(text, encoding="utf-8")
    ws = load_workspace(ws.root)
    with open_store_for(ws) as store:
        add_subscriber(store, "reader@example.net", list_name="weekly")
    real = send_issue(ws, folder, list_name="weekly", smtp_url=server.url, tuning=FAST)
    assert real.sent == 1 and real.warnings == []
    assert b"CHANGE ME" not in handler_of(server).received[0][2]
