"""The web side, end to end, from what readers receive.

A 3000×2000 camera photo with GPS EXIF, named by a Markdown article's front matter, is
composed into an issue and sent through the real ledger to two readers over loopback
SMTP. A real ``serve`` listens at the workspace's base URL. Everything below is
checked from the received mails: the picture they point at, the "View in your browser"
link, /archive/ (the issue, not a draft composed after it), the Atom feed, and the
static files ``newsletter archive build DIR`` writes.
"""

from __future__ import annotations

import io
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import lxml.html
import pytest
from archive_setup import (
    READERS,
    assert_nothing_personal,
    assert_valid_atom,
    browser_links,
    html_part,
    smtp_server,
)
from click.testing import CliRunner
from PIL import Image

from newsletter.cli import cli
from newsletter.deliver import send_issue
from newsletter.store import Consent, open_store_for
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace, load_workspace
from photos import GPS_IFD, compose, photo_with_gps, story

SUBJECT = "Harbour at dawn"
DRAFT_SUBJECT = "Composed after the send"


@dataclass
class Sent:
    """The running serve, the issue folder, the draft folder and the mails received."""

    server: ServeServer
    http: httpx.Client
    ws: Workspace
    issue: Path
    draft: Path
    mails: list[EmailMessage]


def free_port() -> int:
    """A free TCP port on 127.0.0.1, known before serve starts so links can name it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def sent(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sent]:
    port = free_port()
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-key-not-secret")
    monkeypatch.setenv("NEWSLETTER_BASE_URL", f"http://127.0.0.1:{port}")
    ws = load_workspace(workspace_dir)
    (ws.root / "seeds" / "photos").mkdir()
    photo_with_gps(ws.root / "seeds" / "photos" / "dawn.jpg", (3000, 2000))
    issue = compose(ws, story(ws.root / "seeds", "photos/dawn.jpg"), subject=SUBJECT)
    with open_store_for(ws) as store:
        store.import_batch(READERS, list_name="main", consent=Consent(source="cli"))
    with smtp_server() as (handler, url):
        report = send_issue(ws, issue, list_name="main", smtp_url=url)
    assert (report.campaign_sent, report.campaign_total) == (2, 2)  # both rows in the ledger
    later = story(ws.root / "seeds", "photos/dawn.jpg", "later.md")
    draft = compose(ws, later, subject=DRAFT_SUBJECT)
    with open_store_for(ws) as store:
        server = ServeServer(ws, port=port, store=store, scheduler=False)
        server.start_in_thread()
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                yield Sent(server, http, ws, issue, draft, handler.messages)
        finally:
            server.stop()


def by_reader(sent: Sent) -> dict[str, EmailMessage]:
    """The received mails by recipient address."""
    return {m["To"].addresses[0].addr_spec: m for m in sent.mails}


def local_path(sent: Sent, url: str) -> str:
    """A link in a mail -> its path on the running serve (the link names serve itself)."""
    assert url.startswith(sent.ws.base_url + "/"), url
    return url.removeprefix(sent.ws.base_url)


def check_picture(sent: Sent) -> None:
    """(a) The mails' image URL, fetched from serve: at most 1200 px wide, no GPS/EXIF."""
    sources = set()
    for mail in sent.mails:
        page = lxml.html.document_fromstring(html_part(mail))
        sources |= {img.get("src", "") for img in page.iter("img") if "/media/" in img.get("src")}
    [src] = sources  # one picture, the same URL for both readers
    assert re.fullmatch(re.escape(sent.ws.base_url) + r"/media/[0-9a-f]{20}\.jpg", src)
    answer = sent.http.get(local_path(sent, src))
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(answer.content)) as picture:
        assert picture.width <= 1200
        assert picture.getexif().get_ifd(GPS_IFD) == {}
        assert not picture.getexif() and "exif" not in picture.info


def check_web_version(sent: Sent) -> None:
    """(b) "View in your browser": one URL for both, a 200 page without their data."""
    mails = by_reader(sent)
    assert sorted(mails) == sorted(reader.email for reader in READERS)
    links = {address: browser_links(mail) for address, mail in mails.items()}
    [[link], [other]] = links.values()
    assert link == other == f"{sent.ws.base_url}/archive/{sent.issue.name}/"
    answer = sent.http.get(local_path(sent, link))
    assert answer.status_code == 200
    assert SUBJECT in answer.text and "The harbour wakes up" in answer.text
    assert_nothing_personal(answer.text, READERS)
    for mail in mails.values():
        unsubscribe = re.search(r"/u/([^>\s]+)>", mail["List-Unsubscribe"])
        assert unsubscribe is not None
        assert unsubscribe.group(1) not in answer.text


def check_index(sent: Sent) -> None:
    """(c) /archive/ lists the issue, not the draft composed after it (404 too)."""
    index = sent.http.get("/archive/")
    assert index.status_code == 200
    assert SUBJECT in index.text
    assert f'href="{sent.ws.base_url}/archive/{sent.issue.name}/"' in index.text
    assert DRAFT_SUBJECT not in index.text and sent.draft.name not in index.text
    assert sent.http.get(f"/archive/{sent.draft.name}/").status_code == 404


def check_feed(sent: Sent) -> None:
    """(d) /archive/feed.xml is valid Atom listing the issue."""
    answer = sent.http.get("/archive/feed.xml")
    assert answer.status_code == 200
    parsed = assert_valid_atom(answer.content)
    assert [entry.link for entry in parsed.entries] == [
        f"{sent.ws.base_url}/archive/{sent.issue.name}/"
    ]
    assert parsed.entries[0].title == SUBJECT


def check_build(sent: Sent, site: Path) -> None:
    """(e) `archive build SITE` writes the bytes serve answers: pages, feed, media."""
    result = CliRunner().invoke(cli, ["-w", str(sent.ws.root), "archive", "build", str(site)])
    assert result.exit_code == 0, result.output
    [picture] = (sent.issue / "media").iterdir()
    for path, file in (
        ("/archive/", "archive/index.html"),
        ("/archive/feed.xml", "archive/feed.xml"),
        (f"/archive/{sent.issue.name}/", f"archive/{sent.issue.name}/index.html"),
        (f"/media/{picture.name}", f"media/{picture.name}"),
    ):
        answer = sent.http.get(path)
        assert answer.status_code == 200, path
        assert (site / file).read_bytes() == answer.content, file
    assert sorted(p.name for p in (site / "media").iterdir()) == [picture.name]
    assert not (site / "archive" / sent.draft.name).exists()


def test_done_when(sent: Sent, tmp_path: Path) -> None:
    check_picture(sent)
    check_web_version(sent)
    check_index(sent)
    check_feed(sent)
    check_build(sent, tmp_path / "site")
