"""issue.py: compose from real article files, issue.json with line-numbered errors, atomic
writes, re-render without re-summarising, extract."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine

from newsletter.errors import RenderError, SourceError
from newsletter.issue import (
    ISSUE_HTML,
    ISSUE_JSON,
    ISSUE_TXT,
    ComposeResult,
    FolderTakenError,
    compose_issue,
    default_preheader,
    extract_source,
    issue_json,
    read_issue,
    render_issue_folder,
    slugify,
    write_issue_folder,
)
from newsletter.models import Issue, Teaser
from newsletter.render import Rendered, render_issue
from newsletter.workspace import Workspace

ARTICLES = Path(__file__).resolve().parent / "golden" / "articles"
HARBOUR_TITLE = "Harbour ferries switch to batteries"
LIBRARY_TITLE = "A library that lends tools, not books"
ORCHARD_TITLE = "Old orchards find new keepers in the Vinschgau valley"
# 23:30 UTC on 30 November is already 1 December in Berlin, the publication's zone
LATE_EVENING_UTC = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    """A folder with three articles of three kinds: HTML page, Markdown, text scrape."""
    folder = tmp_path / "articles"
    shutil.copytree(ARTICLES, folder)
    return folder


def _compose(ws: Workspace, sources: list[str], **options: Any) -> ComposeResult:
    defaults: dict[str, Any] = {
        "subject": None,
        "intro": "",
        "preheader": "",
        "out": None,
        "skip_bad": False,
    }
    defaults.update(options)
    return compose_issue(ws, sources, **defaults)


def _folders(ws: Workspace) -> list[str]:
    return sorted(path.name for path in ws.issues_dir.iterdir())


# --- compose -----------------------------------------------------------------------------


@time_machine.travel(LATE_EVENING_UTC, tick=False)
def test_compose_writes_a_dated_issue_folder(workspace: Workspace, articles: Path) -> None:
    result = compose_issue(
        workspace,
        [str(articles)],
        subject=None,
        intro="Three small stories of things done well.",
        preheader="",
        out=None,
        skip_bad=False,
    )
    assert result.folder == workspace.issues_dir / "2026-12-01-the-weekly-brief"
    assert sorted(p.name for p in result.folder.iterdir()) == [ISSUE_HTML, ISSUE_JSON, ISSUE_TXT]
    assert _folders(workspace) == ["2026-12-01-the-weekly-brief"]  # no temp leftovers
    issue = result.issue
    assert issue.date == "2026-12-01"
    assert issue.subject == "The Weekly Brief — 1 December 2026"
    assert [t.title for t in issue.teasers] == [HARBOUR_TITLE, LIBRARY_TITLE, ORCHARD_TITLE]
    assert issue.preheader == " · ".join(t.title for t in issue.teasers)
    assert issue.intro == "Three small stories of things done well."
    for teaser in issue.teasers:
        assert 40 <= len(teaser.summary.split()) <= 60
    assert result.skipped == []
    assert result.html_bytes == len((result.folder / ISSUE_HTML).read_bytes())
    # the files hold what was composed and rendered
    assert read_issue(result.folder) == issue
    assert (result.folder / ISSUE_JSON).read_text(encoding="utf-8") == issue_json(issue)
    html = (result.folder / ISSUE_HTML).read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and HARBOUR_TITLE in html
    assert "%%unsubscribe_url%%" in html
    assert ORCHARD_TITLE in (result.folder / ISSUE_TXT).read_text(encoding="utf-8")


@time_machine.travel(LATE_EVENING_UTC, tick=False)
def test_compose_with_subject_and_repeated_names(workspace: Workspace, articles: Path) -> None:
    sources = [str(articles / "library.md"), str(articles / "harbour.html")]
    first = _compose(workspace, sources, subject="Weekly brief: Köln & co", preheader="Hi!")
    second = _compose(workspace, sources, subject="Weekly brief: Köln & co")
    assert first.folder.name == "2026-12-01-weekly-brief-koln-co"
    assert second.folder.name == "2026-12-01-weekly-brief-koln-co-2"
    issue = first.issue
    assert issue.subject == "Weekly brief: Köln & co"
    assert issue.preheader == "Hi!"
    assert [t.title for t in issue.teasers] == [LIBRARY_TITLE, HARBOUR_TITLE]  # given order


def test_missing_source_aborts_before_anything_is_written(
    workspace: Workspace, articles: Path
) -> None:
    missing = str(articles / "no-such-article.html")
    with pytest.raises(SourceError, match=r"no-such-article\.html"):
        _compose(workspace, [str(articles / "harbour.html"), missing])
    assert _folders(workspace) == []


def test_skip_bad_composes_the_rest_and_reports_skipped(
    workspace: Workspace, articles: Path
) -> None:
    (articles / "broken.md").write_text("---\ntitle: [unclosed\n---\nBody.\n", encoding="utf-8")
    missing = str(articles / "no-such-article.html")
    result = _compose(workspace, [str(articles), missing], skip_bad=True)
    skipped = dict(result.skipped)
    assert set(skipped) == {str(articles / "broken.md"), missing}
    assert "broken.md" in skipped[str(articles / "broken.md")]
    titles = [t.title for t in result.issue.teasers]
    assert titles == [HARBOUR_TITLE, LIBRARY_TITLE, ORCHARD_TITLE]
    assert len(_folders(workspace)) == 1


def test_no_good_source_left_is_an_error(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no article could be read"):
        _compose(workspace, [str(tmp_path / "a.txt"), str(tmp_path / "b.md")], skip_bad=True)
    assert _folders(workspace) == []


def test_out_folder_must_be_new_or_empty(workspace: Workspace, articles: Path) -> None:
    taken = workspace.root / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(RenderError, match="not empty"):
        _compose(workspace, [str(articles / "harbour.html")], out=taken)
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]

    empty = workspace.root / "empty"
    empty.mkdir()
    result = _compose(workspace, [str(articles / "harbour.html")], out=empty)
    assert result.folder == empty
    assert (empty / ISSUE_JSON).is_file()
    fresh = workspace.root / "nested" / "fresh"
    _compose(workspace, [str(articles / "harbour.html")], out=fresh)
    assert sorted(p.name for p in fresh.iterdir()) == [ISSUE_HTML, ISSUE_JSON, ISSUE_TXT]
    assert sorted(p.name for p in fresh.parent.iterdir()) == ["fresh"]


def test_the_same_article_twice_is_kept_once(workspace: Workspace, articles: Path) -> None:
    harbour = str(articles / "harbour.html")
    result = _compose(workspace, [harbour, str(articles / "library.md"), harbour])
    assert len(result.issue.teasers) == 2
    assert any("same article" in w for w in result.warnings)


def test_default_preheader_and_slug() -> None:
    teasers = [Teaser(title=f"Headline number {n} about something", summary="") for n in range(5)]
    preheader = default_preheader(teasers)
    assert preheader.startswith("Headline number 0 about something · Headline number 1")
    assert len(preheader) <= 140
    long = default_preheader([Teaser(title="word " * 60, summary="")])
    assert len(long) <= 140 and long.endswith("…")
    assert slugify("The Weekly Brief — Ça va? 🎻") == "the-weekly-brief-ca-va"
    assert slugify("🎻") == "issue"
    assert len(slugify("x" * 30 + " " + "y" * 40)) <= 60


# --- render an existing folder -------------------------------------------------------------


def test_render_folder_uses_the_edited_issue_json_and_never_resummarises(
    workspace: Workspace, articles: Path
) -> None:
    folder = _compose(workspace, [str(articles)]).folder
    shutil.rmtree(articles)  # the sources are gone: a re-render must not need them
    data = json.loads((folder / ISSUE_JSON).read_text(encoding="utf-8"))
    data["teasers"][1]["summary"] = "An editor rewrote this teaser by hand — für alle."
    edited = json.dumps(data, ensure_ascii=False, indent=2)
    (folder / ISSUE_JSON).write_text(edited, encoding="utf-8")

    result = render_issue_folder(workspace, folder)
    assert result.folder == folder
    html = (folder / ISSUE_HTML).read_text(encoding="utf-8")
    assert "An editor rewrote this teaser by hand — für alle." in html
    assert "An editor rewrote this teaser by hand — für alle." in (folder / ISSUE_TXT).read_text(
        encoding="utf-8"
    )
    assert result.html_bytes == len(html.encode("utf-8"))
    assert (folder / ISSUE_JSON).read_text(encoding="utf-8") == edited  # left as the user wrote it
    assert sorted(p.name for p in folder.iterdir()) == [ISSUE_HTML, ISSUE_JSON, ISSUE_TXT]


def test_render_folder_missing_folder_or_issue_json(workspace: Workspace) -> None:
    with pytest.raises(RenderError, match="no such issue folder") as caught:
        render_issue_folder(workspace, workspace.issues_dir / "nope")
    assert "newsletter compose" in str(caught.value)
    empty = workspace.issues_dir / "empty"
    empty.mkdir()
    with pytest.raises(RenderError, match=r"issue\.json: not found"):
        render_issue_folder(workspace, empty)


# --- issue.json errors name file, line and field ------------------------------------------


def _issue_file(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "issue"
    folder.mkdir()
    (folder / ISSUE_JSON).write_text(text, encoding="utf-8")
    return folder


GOOD_JSON = """{
  "subject": "Weekly",
  "preheader": "",
  "date": "2026-11-28",
  "intro": "",
  "teasers": [
    {
      "title": "First",
      "summary": "One."
    },
    {
      "title": "Second",
      "summary": "Two.",
      "url": "https://example.org/2"
    }
  ]
}
"""


def test_read_issue_reads_a_hand_written_file(tmp_path: Path) -> None:
    issue = read_issue(_issue_file(tmp_path, GOOD_JSON))
    assert issue.subject == "Weekly"
    assert [t.title for t in issue.teasers] == ["First", "Second"]
    assert issue.teasers[1].url == "https://example.org/2"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"One."\n    },', '"One.",\n    },', r"line 10: invalid JSON"),
        ('"title": "Second",', '"titel": "Second",', r"line 11: teasers\[1\]\.title: missing"),
        (
            '"title": "Second",',
            '"title": "Second", "colour": "red",',
            r"line 12: .*colour: unknown",
        ),
        ('"summary": "Two.",', '"summary": 2,', r"line 13: teasers\[1\]\.summary: .*string"),
        ('"2026-11-28"', '"28.11.2026"', r"line 4: date: '28.11.2026' is not a date"),
        ('"subject": "Weekly"', '"subject": "  "', r"line 2: subject: "),
        ('"teasers": [', '"teasers": [], "x": [', r"line 6: teasers: .*at least one teaser"),
        (
            '"https://example.org/2"',
            '"javascript:alert(1)"',
            r"line 14: teasers\[1\]\.url: 'javascript:alert\(1\)' is not a web address",
        ),
        ('"One."\n', '"One.", "image": "not a url"\n', r"line 9: teasers\[0\]\.image: "),
    ],
)
def test_read_issue_errors_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD_JSON
    folder = _issue_file(tmp_path, GOOD_JSON.replace(old, new, 1))
    with pytest.raises(RenderError, match=expected) as caught:
        read_issue(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder / ISSUE_JSON}, line ")
    assert "newsletter render" in message  # says what to do next


def test_read_issue_wants_an_object(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"line 1: must hold one JSON object"):
        read_issue(_issue_file(tmp_path, "[]"))


def test_read_issue_rejects_non_utf8(tmp_path: Path) -> None:
    folder = _issue_file(tmp_path, "")
    (folder / ISSUE_JSON).write_bytes(GOOD_JSON.replace("First", "Caf\xe9").encode("latin-1"))
    with pytest.raises(RenderError, match=r"line 8: not UTF-8"):
        read_issue(folder)


# --- atomic writes -----------------------------------------------------------------------


def _sample(workspace: Workspace) -> tuple[Issue, Rendered]:
    issue = Issue(
        subject="Atomic",
        date="2026-11-28",
        teasers=[Teaser(title="Straße", summary="Köln café.", url="https://example.org/a")],
    )
    return issue, render_issue(workspace, issue)


def test_write_issue_folder_failure_leaves_nothing(workspace: Workspace) -> None:
    issue, rendered = _sample(workspace)
    # a lone surrogate cannot be encoded: the third file fails after two were written
    broken = Rendered(
        html=rendered.html,
        text="\udcff",
        subject=rendered.subject,
        preheader=rendered.preheader,
    )
    folder = workspace.issues_dir / "2026-11-28-atomic"
    with pytest.raises(UnicodeEncodeError):
        write_issue_folder(folder, issue, broken)
    assert _folders(workspace) == []


def test_write_issue_folder_replaces_files_in_an_existing_folder(workspace: Workspace) -> None:
    issue, rendered = _sample(workspace)
    folder = workspace.issues_dir / "2026-11-28-atomic"
    write_issue_folder(folder, issue, rendered)
    (folder / "notes.md").write_text("kept", encoding="utf-8")
    issue.subject = "Atomic, again"
    write_issue_folder(folder, issue, rendered)
    assert read_issue(folder).subject == "Atomic, again"
    assert sorted(p.name for p in folder.iterdir()) == [
        ISSUE_HTML,
        ISSUE_JSON,
        ISSUE_TXT,
        "notes.md",
    ]
    assert (
        json.loads((folder / ISSUE_JSON).read_text(encoding="utf-8"))["teasers"][0]["title"]
        == "Straße"
    )  # UTF-8 kept as characters
    assert "Straße" in (folder / ISSUE_JSON).read_text(encoding="utf-8")


def test_exclusive_write_never_touches_a_taken_folder(workspace: Workspace) -> None:
    issue, rendered = _sample(workspace)
    folder = workspace.issues_dir / "2026-11-28-atomic"
    folder.mkdir(parents=True)
    (folder / ISSUE_JSON).write_text("someone else's", encoding="utf-8")
    with pytest.raises(FolderTakenError):
        write_issue_folder(folder, issue, rendered, exclusive=True)
    assert sorted(p.name for p in folder.iterdir()) == [ISSUE_JSON]
    assert (folder / ISSUE_JSON).read_text(encoding="utf-8") == "someone else's"
    assert _folders(workspace) == ["2026-11-28-atomic"]


# --- extract -----------------------------------------------------------------------------


def test_extract_source_gives_fields_and_teaser(workspace: Workspace, articles: Path) -> None:
    [item] = extract_source(workspace, str(articles / "harbour.html"))
    assert {"title", "url", "image", "byline", "text", "summary"} <= set(item)
    assert item["title"] == HARBOUR_TITLE
    assert item["url"] == "https://coast.example.org/ferries-batteries"
    assert item["image"] == "https://images.example.org/ferry.jpg"
    assert item["byline"] == "Sigrid Aas"
    assert "Subscribe to our newsletter" not in item["text"]
    assert 40 <= len(item["summary"].split()) <= 60
    assert item["text"].startswith(item["summary"].split(".")[0])


def test_extract_missing_source_is_a_source_error(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nothing-here\.txt"):
        extract_source(workspace, str(tmp_path / "nothing-here.txt"))
