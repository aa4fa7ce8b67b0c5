"""The public archive: a real send through loopback SMTP, then the real serve app.

The mail's "View in your browser" link is the same for every recipient and gives the
web version without anything personal; /archive/ and the feed list what was sent to
the public list and nothing else; pages revalidate with ETag / Last-Modified; and
``archive build`` writes the bytes ``serve`` answers with.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from archive_setup import (
    PRIVATE_READER,
    READERS,
    History,
    assert_nothing_personal,
    assert_valid_atom,
    browser_links,
    make_history,
    smtp_server,
    write_issue,
)
from starlette.testclient import TestClient

from newsletter.archive.build import build_archive
from newsletter.cli import cli
from newsletter.store import open_store_for
from newsletter.web import create_app
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace

BASE = "https://brief.example.org"


@pytest.fixture
def history(workspace: Workspace) -> History:
    return make_history(workspace)


@pytest.fixture
def client(workspace: Workspace, history: History) -> Iterator[TestClient]:
    with open_store_for(workspace) as store, TestClient(create_app(workspace, store)) as client:
        yield client


def _path(url: str) -> str:
    assert url.startswith(BASE)
    return url.removeprefix(BASE)


def test_every_mail_links_the_same_web_version(history: History) -> None:
    to_main = [m for m in history.mails if m["To"] and "example.org" in m["To"]]
    links = {m["To"].addresses[0].addr_spec: browser_links(m) for m in to_main if m["To"].addresses}
    expected = [f"{BASE}/archive/2026-12-01-harbour/"]
    assert links["ada.lovelace@example.org"] == expected
    assert links["grace.hopper@example.org"] == expected
    text = history.mails[0].get_body(("plain",))
    assert text is not None and "View in your browser: https://brief.example.org/archive/" in str(
        text.get_content()
    )


def test_the_web_version_has_nothing_personal(client: TestClient) -> None:
    answer = client.get("/archive/2026-12-01-harbour/")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    page = answer.text
    assert_nothing_personal(page, [*READERS, PRIVATE_READER])
    assert "Hi reader," in page
    assert f'<a href="{BASE}/subscribe">Subscribe</a>' in page
    assert "View in your browser" not in page


def test_the_web_version_has_title_open_graph_and_canonical(client: TestClient) -> None:
    page = client.get("/archive/2026-12-01-harbour/").text
    url = f"{BASE}/archive/2026-12-01-harbour/"
    # the subject's markup characters arrive escaped, never as tags
    assert "<title>Harbour news &amp; &lt;more&gt;</title>" in page
    assert f'<link rel="canonical" href="{url}">' in page
    assert '<meta property="og:title" content="Harbour news &amp; &lt;more&gt;">' in page
    assert '<meta property="og:description" content="Tides and ferries">' in page
    assert f'<meta property="og:url" content="{url}">' in page
    assert '<meta property="og:type" content="article">' in page
    assert "<more>" not in page


def test_the_index_lists_only_what_was_sent_to_the_public_list(client: TestClient) -> None:
    answer = client.get("/archive/")
    assert answer.status_code == 200
    assert "Harbour news &amp; &lt;more&gt;" in answer.text
    assert 'href="https://brief.example.org/archive/2026-12-01-harbour/"' in answer.text
    for hidden in ("Unsent draft", "Only a test", "Insiders only"):
        assert hidden not in answer.text
    assert '<meta name="robots" content="index, follow">' in answer.text


def test_drafts_test_sends_and_private_issues_are_404(client: TestClient) -> None:
    missing = client.get("/archive/no-such-issue/")
    assert missing.status_code == 404
    for name in ("2026-12-08-draft", "2026-12-09-tested", "2026-12-10-insiders"):
        answer = client.get(f"/archive/{name}/")
        assert answer.status_code == 404
        assert answer.content == missing.content
    assert client.get("/archive/?page=2").status_code == 404
    assert client.get("/archive/page/2/").status_code == 404


def test_the_feed_is_atom_and_lists_the_same(client: TestClient) -> None:
    answer = client.get("/archive/feed.xml")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = assert_valid_atom(answer.content)
    assert [e.link for e in parsed.entries] == [f"{BASE}/archive/2026-12-01-harbour/"]
    assert parsed.entries[0].title == "Harbour news & <more>"
    assert parsed.entries[0].summary == "Tides and ferries"


def test_pages_revalidate_with_etag_and_last_modified(client: TestClient) -> None:
    for path in ("/archive/", "/archive/feed.xml", "/archive/2026-12-01-harbour/"):
        first = client.get(path)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
        assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
        older = "Mon, 01 Jan 2001 00:00:00 GMT"
        assert client.get(path, headers={"If-Modified-Since": older}).status_code == 200


def test_a_new_send_shows_up_without_a_restart(
    workspace: Workspace, history: History, client: TestClient
) -> None:
    before = client.get("/archive/")
    later = write_issue(workspace, "2026-12-15-later", "Later issue")
    with smtp_server() as (_, url):
        from newsletter.deliver import send_issue

        send_issue(workspace, later, list_name="main", smtp_url=url)
    after = client.get("/archive/", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.text.index("Later issue") < after.text.index("Harbour news")
    assert client.get("/archive/2026-12-15-later/").status_code == 200


def test_archive_build_writes_the_served_bytes(
    workspace: Workspace, history: History, client: TestClient, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    media = history.public / "media"
    media.mkdir()
    (media / "ab12.png").write_bytes(b"\x89PNG fake")
    report = build_archive(workspace, site)
    assert report.issues == 1
    for path, file in (
        ("/archive/", "archive/index.html"),
        ("/archive/feed.xml", "archive/feed.xml"),
        ("/archive/2026-12-01-harbour/", "archive/2026-12-01-harbour/index.html"),
    ):
        assert (site / file).read_bytes() == client.get(path).content
    assert (site / "404.html").read_bytes() == client.get("/archive/nothing/").content
    assert (site / "media" / "ab12.png").read_bytes() == b"\x89PNG fake"
    assert not (site / "archive" / "2026-12-08-draft").exists()


def test_archive_lists_setting_publishes_other_lists(
    workspace_dir: Path, workspace: Workspace, history: History
) -> None:
    config = workspace_dir / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + '\n[archive]\nlists = ["insiders"]\npage_size = 1\n',
        encoding="utf-8",
    )
    from newsletter.workspace import load_workspace

    ws = load_workspace(workspace_dir)
    with open_store_for(ws) as store, TestClient(create_app(ws, store)) as client:
        index = client.get("/archive/").text
        assert "Insiders only" in index and "Harbour news" not in index
        assert client.get("/archive/2026-12-01-harbour/").status_code == 404


def test_the_cli_builds_the_archive(workspace_dir: Path, history: History, tmp_path: Path) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(
        cli, ["-w", str(workspace_dir), "archive", "build", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "(1 issue)" in result.output
    assert (tmp_path / "out" / "archive" / "2026-12-01-harbour" / "index.html").is_file()


def test_a_real_server_answers_the_archive(workspace: Workspace, history: History) -> None:
    with open_store_for(workspace) as store:
        serving = ServeServer(workspace, store=store, scheduler=False)
        serving.start_in_thread()
        try:
            with httpx.Client(base_url=serving.url, timeout=10) as http:
                page = http.get("/archive/2026-12-01-harbour/")
                assert page.status_code == 200 and "Subscribe" in page.text
                again = http.get(
                    "/archive/2026-12-01-harbour/", headers={"If-None-Match": page.headers["etag"]}
                )
                assert again.status_code == 304
                assert http.get("/archive/2026-12-08-draft/").status_code == 404
        finally:
            serving.stop()
