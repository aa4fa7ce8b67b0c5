"""Selection and dedupe: canonical URLs, folded titles, --since / --limit / priority
order, and the record of featured articles that outlives an edited or deleted folder."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from newsletter.compose.build import compose_issue
from newsletter.compose.selection import canonical_url, parse_since, select_articles, title_key
from newsletter.errors import NewsletterError, SourceError
from newsletter.models import Article
from newsletter.workspace import Workspace


def test_canonical_url_drops_tracking_and_folds_case_port_and_slash() -> None:
    plain = "https://news.example.org/story?id=4"
    for variant in (
        "HTTPS://News.Example.org:443/story/?utm_source=x&id=4&fbclid=abc#top",
        "https://news.example.org/story?gclid=1&id=4&mc_cid=2&mc_eid=3&ref=home",
    ):
        assert canonical_url(variant) == plain
    assert canonical_url("https://news.example.org:8443/story") != canonical_url(plain)
    assert title_key("  Bridge  repairs — finish EARLY!") == title_key(
        "bridge repairs finish early"
    )


def _article(title: str, published: str = "", priority: float = 0.0, url: str = "") -> Article:
    return Article(
        title=title, text="x", source="s", url=url, published=published, priority=priority
    )


def test_order_since_limit_and_repeats() -> None:
    articles = [
        _article("Old", "2026-11-01"),
        _article("Undated"),
        _article("Newest", "2026-12-03"),
        _article("Pinned", "2026-11-02", priority=5),
        _article("Seen before", "2026-12-02", url="https://e.org/seen"),
    ]
    featured = {"url:https://e.org/seen"}
    chosen = select_articles(articles, featured=featured, since=date(2026, 11, 2), limit=2)
    assert [a.title for a in chosen.chosen] == ["Pinned", "Newest"]
    assert [a.title for a in chosen.over_limit] == ["Undated"]  # dateless: after the dated
    assert [a.title for a in chosen.older] == ["Old"]
    assert [a.title for a in chosen.repeats] == ["Seen before"]
    assert parse_since("7d", today=date(2026, 12, 8), last_issue=None) == date(2026, 12, 1)
    assert parse_since("last", today=date(2026, 12, 8), last_issue="2026-12-04") == date(
        2026, 12, 4
    )
    with pytest.raises(NewsletterError, match="accepted forms"):
        parse_since("yesterday-ish", today=date(2026, 12, 8), last_issue=None)


def test_dedupe_survives_an_edited_and_a_deleted_issue_folder(
    workspace: Workspace, tmp_path: Path
) -> None:
    source = tmp_path / "story.md"
    source.write_text(
        "---\ntitle: Harbour ferries switch to batteries\nurl: https://e.org/ferries?utm_medium=x\n"
        "---\nThe harbour's ferries now run on batteries charged overnight from the grid.\n",
        encoding="utf-8",
    )
    options = {"subject": None, "intro": "", "preheader": "", "out": None, "skip_bad": False}
    first = compose_issue(workspace, [str(source)], **options)
    (first.folder / "issue.json").write_text(
        (first.folder / "issue.json").read_text(encoding="utf-8").replace("ferries", "boats"),
        encoding="utf-8",
    )
    with pytest.raises(SourceError, match="1 featured in an earlier issue"):
        compose_issue(workspace, [str(source)], **options)
    shutil.rmtree(first.folder)
    with pytest.raises(SourceError, match="--allow-repeats"):
        compose_issue(workspace, [str(source)], **options)
    again = compose_issue(workspace, [str(source)], **options, allow_repeats=True)
    assert len(again.issue.teasers) == 1


def test_an_issue_folder_from_before_the_record_counts_as_featured(
    workspace: Workspace, tmp_path: Path
) -> None:
    old = workspace.issues_dir / "2026-11-20-old"
    old.mkdir(parents=True)
    (old / "issue.json").write_text(
        '{"subject": "Old", "date": "2026-11-20", "teasers": [{"title": "Harbour ferries '
        'switch to batteries", "summary": "s", "url": "https://e.org/elsewhere"}]}',
        encoding="utf-8",
    )
    source = tmp_path / "story.md"
    source.write_text(
        "---\ntitle: Harbour ferries switch to batteries!\n---\nThe ferries run on batteries.\n",
        encoding="utf-8",
    )
    with pytest.raises(SourceError, match="featured in an earlier issue"):
        compose_issue(
            workspace, [str(source)], subject=None, intro="", preheader="", out=None, skip_bad=False
        )
