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
