"""Every URL an article gets is one a mail can carry: composable means sendable."""

from __future__ import annotations

import email
import email.policy
import json
import logging
from pathlib import Path

import pytest

from newsletter.compose.build import compose_issue
from newsletter.compose.folder import render_issue_folder
from newsletter.compose.ingest import read_source
from newsletter.compose.ingest.fields import absolute_url
from newsletter.deliver import dry_run
from newsletter.workspace import Workspace

FERRY_TEXT = (
    "The island ferry will run four times a day instead of six from December, the operator "
    "said on Monday, because fewer visitors travel in winter and two crew members retire. "
    "The first boat still leaves at seven, and the last returns at eight in the evening."
)


def _feed(link: str, image: str) -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<title>Harbour Desk</title><link>https://harbour.example.org/</link>
<item><title>Ferry timetable changes for the winter season</title><link>{link}</link>
<media:content url="{image}" medium="image"/>
<description>{FERRY_TEXT}</description></item>
</channel></rss>"""


@pytest.mark.parametrize(
    ("given", "sendable"),
    [
        ("https://example.org/a/b?x=1&y=2#top", "https://example.org/a/b?x=1&y=2#top"),
        ("https://example.org/a%20b", "https://example.org/a%20b"),
        ("https://example.org/winter deck.jpg", "https://example.org/winter%20deck.jpg"),
        ("https://example.org/50%off", "https://example.org/50%25off"),
        ('https://example.org/"quoted"<x>', "https://example.org/%22quoted%22%3Cx%3E"),
        (
            "https://münchen.example/straße?q=ä",
            "https://xn--mnchen-3ya.example/stra%C3%9Fe?q=%C3%A4",
        ),
        ("https://example.org/a\n/b\t", "https://example.org/a/b"),
        ("//cdn.example.org/p.jpg", "https://cdn.example.org/p.jpg"),
        ("pictures/p 1.jpg", "https://news.example.org/2026/pictures/p%201.jpg"),
        ("javascript:alert(1)", ""),
        ("data:image/png;base64,iVBORw0KGgo=", ""),
        ("mailto:desk@example.org", ""),
        ("https://exa mple.org/", ""),
        ("https://example.org:99999/", ""),
    ],
)
def test_absolute_url_normalises_or_refuses(given: str, sendable: str) -> None:
    assert absolute_url(given, "https://news.example.org/2026/story") == sendable
    assert absolute_url(sendable) == sendable  # normalising twice changes nothing


def test_feed_link_and_image_with_spaces_are_encoded(tmp_path: Path) -> None:
    feed = tmp_path / "harbour.xml"
    feed.write_text(
        _feed(
            "https://harbour.example.org/news/ferry winter",
            "https://images.example.org/ferry photos/winter deck.jpg",
        ),
        encoding="utf-8",
    )
    [article] = read_source(str(feed))
    assert article.url == "https://harbour.example.org/news/ferry%20winter"
    assert article.image == "https://images.example.org/ferry%20photos/winter%20deck.jpg"


def test_script_and_data_urls_are_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed = tmp_path / "harbour.xml"
    feed.write_text(_feed("javascript:alert(1)", "data:image/png;base64,AAAA"), encoding="utf-8")
    markdown = tmp_path / "note.md"
    markdown.write_text(
        "---\ntitle: A note on ferries\nimage: javascript:alert(1)\n---\n\n" + FERRY_TEXT,
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        [article] = read_source(str(feed))
    assert (article.url, article.image, article.image_alt) == ("", "", "")
    assert any("'javascript:alert(1)' is not a web address" in m for m in caplog.messages)
    with pytest.raises(Exception, match=r"note\.md, line 3: front matter 'image' must be"):
        read_source(str(markdown))


def test_a_feed_image_with_a_space_composes_renders_and_sends(ws: Workspace) -> None:
    feed = ws.root / "harbour.xml"
    feed.write_text(
        _feed(
            "https://harbour.example.org/news/ferry-winter",
            "https://images.example.org/ferry photos/winter deck.jpg",
        ),
        encoding="utf-8",
    )
    composed = compose_issue(
        ws, [str(feed)], subject="Harbour", intro="", preheader="", out=None, skip_bad=False
    )
    teaser = json.loads((composed.folder / "issue.json").read_text(encoding="utf-8"))["teasers"][0]
    assert teaser["image"] == "https://images.example.org/ferry%20photos/winter%20deck.jpg"
    render_issue_folder(ws, composed.folder)
    assert teaser["image"] in (composed.folder / "issue.html").read_text(encoding="utf-8")
    report = dry_run(ws, composed.folder, ws.root / "out")
    assert report.count == 5
    for path in (ws.root / "out").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        html = message.get_body(preferencelist=("html",))
        assert html is not None and teaser["image"] in html.get_content()
