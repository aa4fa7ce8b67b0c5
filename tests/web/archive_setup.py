"""A workspace with a real send history for the archive tests: issues composed into
folders, sent through an aiosmtpd server on loopback to a public and a private list, a
test send and a draft; and the checks a web version and a feed must pass. Helpers
only; the tests are in test_web_archive*.py and test_web_done_when.py."""

from __future__ import annotations

import email
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import feedparser
from aiosmtpd.controller import Controller

from newsletter.compose.folder import render_issue_folder
from newsletter.compose.issue_file import issue_json, parse_issue
from newsletter.deliver import send_issue, send_test
from newsletter.store import Consent, ImportRow, open_store_for
from newsletter.workspace import Workspace

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sample_issue.json"
READERS = [
    ImportRow(email="ada.lovelace@example.org", name="Ada Lovelace", attributes={"city": "Oslo"}),
    ImportRow(email="grace.hopper@example.org", name="Grace Hopper", attributes={"city": "Lima"}),
]
PRIVATE_READER = ImportRow(email="insider@example.org", name="Ins Ider")


class Recorder:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 2.0.0 taken"


@contextmanager
def smtp_server() -> Iterator[tuple[Recorder, str]]:
    """A recording SMTP server on loopback -> (its handler, its smtp:// URL)."""
    handler = Recorder()
    with socket.socket() as probe:  # aiosmtpd's Controller cannot listen on port 0 itself
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def write_issue(ws: Workspace, name: str, subject: str, preheader: str = "") -> Path:
    """An issue folder ``issues/<name>`` with the golden issue under ``subject``, rendered."""
    issue = parse_issue(GOLDEN.read_text(encoding="utf-8"), GOLDEN)
    issue = replace(issue, subject=subject, preheader=preheader or issue.preheader)
    folder = ws.issues_dir / name
    folder.mkdir(parents=True)
    (folder / "issue.json").write_text(issue_json(issue), encoding="utf-8")
    render_issue_folder(ws, folder)
    return folder


@dataclass
class History:
    """What ``make_history`` did: the folders by role, and the mails the server got."""

    public: Path
    draft: Path
    tested: Path
    private: Path
    mails: list[EmailMessage] = field(default_factory=list)


def html_part(message: EmailMessage) -> str:
    """The text/html part of ``message``."""
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def browser_links(message: EmailMessage) -> list[str]:
    """The "View in your browser" link targets in ``message``'s HTML."""
    return re.findall(r'<a href="([^"]+)"[^>]*>View in your browser</a>', html_part(message))


def make_history(ws: Workspace) -> History:
    """Send one issue to the public list (two readers), one to a private list, a test
    send of a third, and leave a fourth as a draft."""
    with open_store_for(ws) as store:
        store.import_batch(READERS, list_name="main", consent=Consent(source="cli"))
        store.import_batch([PRIVATE_READER], list_name="insiders", consent=Consent(source="cli"))
    history = History(
        public=write_issue(ws, "2026-12-01-harbour", "Harbour news & <more>", "Tides and ferries"),
        draft=write_issue(ws, "2026-12-08-draft", "Unsent draft"),
        tested=write_issue(ws, "2026-12-09-tested", "Only a test"),
        private=write_issue(ws, "2026-12-10-insiders", "Insiders only"),
    )
    with smtp_server() as (handler, url):
        send_issue(ws, history.public, list_name="main", smtp_url=url)
        send_issue(ws, history.private, list_name="insiders", smtp_url=url)
        send_test(ws, history.tested, ["editor@example.org"], smtp_url=url)
    history.mails = handler.messages
    return history


ATOM = "{http://www.w3.org/2005/Atom}"


def assert_valid_atom(content: bytes) -> Any:
    """Check ``content`` is an Atom 1.0 feed feedparser reads without complaint, with the
    feed's and each entry's required elements -> feedparser's result."""
    parsed = feedparser.parse(content)
    assert not parsed.bozo and parsed.version == "atom10", parsed.get("bozo_exception")
    root = ET.fromstring(content)
    for tag in ("id", "title", "updated", "author/" + ATOM + "name"):
        assert root.find(ATOM + tag) is not None, tag
    assert root.find(f"{ATOM}link[@rel='alternate']") is not None
    for entry in root.iter(ATOM + "entry"):
        for tag in ("id", "title", "updated", "summary"):
            assert (entry.findtext(ATOM + tag) or "").strip(), tag
        assert entry.find(f"{ATOM}link[@rel='alternate']") is not None
    return parsed


def assert_nothing_personal(page: str, readers: list[ImportRow]) -> None:
    """Check a web version ``page`` names none of ``readers`` (address, name, first name,
    attributes) and has no unsubscribe link or footer addressed to anyone."""
    for reader in readers:
        assert reader.email not in page and reader.name not in page
        assert reader.name.split()[0] not in page
        for value in (reader.attributes or {}).values():
            assert str(value) not in page
    for secret in ("/u/", "%%", "Unsubscribe", "This email was sent to"):
        assert secret not in page
