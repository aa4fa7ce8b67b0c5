"""Article text never becomes a recipient slot, however it reaches the issue.

A hostile feed (tests/fixtures/articles/feed_slots.xml) writes %%email%%,
%%unsubscribe_url%%, %%name%%, %%greeting_name%%, %%first_name%% and %%attr.plan%% into
its media:content URL, link, title, author and description; an editor can type the same
into an article's fields in issue.json. Each is composed or rendered by the real code and
turned into the exact messages a send would hand to SMTP (dry run, real SQLite ledger):
every such token reaches the reader as the literal text it was, while the slots the
templates and the editor's own fields (subject, intro) write are still filled.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from email.message import EmailMessage
from pathlib import Path

from newsletter.compose.build import compose_issue
from newsletter.compose.folder import render_issue_folder
from newsletter.deliver import dry_run
from newsletter.workspace import Workspace

FEED = Path(__file__).resolve().parents[1] / "fixtures" / "articles" / "feed_slots.xml"
ADA = "ada.lovelace@example.com"
PIXEL = "https://collector.example.com/pixel.gif?to=%%email%%&u=%%unsubscribe_url%%"
LINK = "https://collector.example.com/story?who=%%email%%&leave=%%unsubscribe_url%%"
TITLE = "Free prize for %%name%% and %%greeting_name%% today"


def _messages(ws: Workspace, folder: Path, out: Path) -> dict[str, EmailMessage]:
    """The dry run of ``folder`` to list main: recipient address -> parsed message."""
    dry_run(ws, folder, out)
    found = {}
    for path in sorted(out.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found[message["To"].addresses[0].addr_spec] = message
    return found


def _parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of ``message``, each with its whitespace runs made single spaces."""
    text, html = (" ".join(str(part.get_content()).split()) for part in message.iter_parts())
    return text, html


def _assert_only_the_theme_fills(ws: Workspace, message: EmailMessage, address: str) -> None:
    """The recipient's address and unsubscribe link appear once per part (the footer)."""
    text, html = _parts(message)
    unsubscribe = f"{ws.base_url}/u/"
    for part in (text, html):
        assert part.count(address) == 1, part
        assert part.count(unsubscribe) == 1


def test_a_hostile_feed_reaches_readers_as_literal_text(ws: Workspace, tmp_path: Path) -> None:
    composed = compose_issue(
        ws,
        [str(FEED)],
        subject=None,
        intro="Hello %%first_name%%, one story this week.",
        preheader="",
        out=None,
        skip_bad=False,
    )
    messages = _messages(ws, composed.folder, tmp_path / "dry")
    message = messages[ADA]
    _assert_only_the_theme_fills(ws, message, ADA)
    text, html = _parts(message)
    # the feed's image URL and link as ingest normalised them (a stray % is %25 in a URL),
    # its headline, author and summary as the feed wrote them
    pixel, link = PIXEL.replace("%", "%25"), LINK.replace("%", "%25")
    assert f'src="{pixel.replace("&", "&amp;")}"' in html
    assert f'href="{link.replace("&", "&amp;")}"' in html
    assert TITLE in html and TITLE in text
    assert "By %%first_name%% Collector" in text
    assert "with %%attr.plan%% tickets" in text and "Questions go to %%email%%" in text
    assert f"Read more: {link}" in text
    # the headlines made the preheader: no reader's name gets into it either
    preheader = re.search(r'<div class="preheader"[^>]*>([^<]*)</div>', html)
    assert preheader is not None and "Ada" not in preheader.group(1)
    # the slots of the theme and of the editor's intro are filled
    assert "Hi Ada Lovelace," in text and "Hello Ada, one story this week." in text
    assert "premium" not in text + html


def test_slots_typed_into_article_fields_of_issue_json_stay_text(
    ws: Workspace, tmp_path: Path
) -> None:
    folder = ws.issues_dir / "2026-11-28-edited"
    folder.mkdir(parents=True)
    issue = {
        "subject": "News for %%first_name%%",
        "date": "2026-11-28",
        "preheader": "This week, %%name%%:",
        "intro": "",
        "teasers": [
            {
                "title": TITLE,
                "summary": "Plan %%attr.plan%%, address %%email%%, leave at %%unsubscribe_url%%.",
                "url": LINK,
                "image": PIXEL,
                "image_alt": "for %%greeting_name%%",
                "byline": "%%name%%",
                "published": "2026-11-27",
                "source": "%%email%%",
            }
        ],
    }
    (folder / "issue.json").write_text(json.dumps(issue), encoding="utf-8")
    render_issue_folder(ws, folder)

    message = _messages(ws, folder, tmp_path / "dry")[ADA]
    _assert_only_the_theme_fills(ws, message, ADA)
    text, html = _parts(message)
    assert f'src="{PIXEL.replace("&", "&amp;")}"' in html
    assert 'alt="for %%greeting_name%%"' in html
    assert "Plan %%attr.plan%%, address %%email%%, leave at %%unsubscribe_url%%." in text
    assert "By %%name%%" in text and TITLE in text
    # the editor's subject and preheader fill
    assert str(message["Subject"]) == "News for Ada"
    assert "This week, Ada Lovelace:" in html
