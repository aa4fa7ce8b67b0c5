"""compose/ (build, folder, issue_file): compose from real article files, issue.json with
line-numbered errors, atomic writes, re-render without re-summarising, extract."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import time_machine

import newsletter.compose.folder as folder_module
from newsletter.compose.build import ComposeResult, compose_issue, default_preheader, extract_source
from newsletter.compose.folder import (
    ISSUE_HTML,
    ISSUE_TXT,
    load_rendered,
    render_issue_folder,
    slugify,
    write_issue_folder,
    write_rendered,
)
from newsletter.compose.issue_file import ISSUE_JSON, issue_json, read_issue
from newsletter.errors import FolderTakenError, RenderError, SourceError
from newsletter.models import Issue, Teaser
from newsletter.render.pipeline import Rendered, render_issue
from newsletter.render.stamp import SEND_HTML, SEND_TXT, STAMP_FILE, render_fingerprint
from newsletter.workspace import Workspace, load_workspace

ARTICLES = Path(__file__).resolve().parents[1] / "golden" / "articles"
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
    assert sorted(p.name for p in result.folder.iterdir()) == [
        STAMP_FILE,
        SEND_HTML,
        SEND_TXT,
        ISSUE_HTML,
        ISSUE_JSON,
        ISSUE_TXT,
    ]
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
    assert 'href="https://brief.example.org/subscribe"' in html  # the reader's view
    assert ORCHARD_TITLE in (result.folder / ISSUE_TXT).read_text(encoding="utf-8")


@time_machine.travel(LATE_EVENING_UTC, tick=False)
def test_compose_with_subject_and_repeated_names(workspace: Workspace, articles: Path) -> None:
    sources = [str(articles / "library.md"), str(articles / "harbour.html")]
    first = _compose(workspace, sources, subject="Weekly brief: Köln & co", preheader="Hi!")
    second = _compose(workspace, sources, subject="Weekly brief: Köln & co", allow_repeats=True)
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
    _compose(workspace, [str(articles / "harbour.html")], out=fresh, allow_repeats=True)
    assert sorted(p.name for p in fresh.iterdir()) == [
        STAMP_FILE,
        SEND_HTML,
        SEND_TXT,
        ISSUE_HTML,
        ISSUE_JSON,
        ISSUE_TXT,
    ]
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
    assert sorted(p.name for p in folder.iterdir()) == [
        STAMP_FILE,
        SEND_HTML,
        SEND_TXT,
        ISSUE_HTML,
        ISSUE_JSON,
        ISSUE_TXT,
    ]


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
        ('"One."\n', '"One.", "image": "data:,x"\n', r"line 9: teasers\[0\]\.image: "),
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
        SEND_HTML,
        SEND_TXT,
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


# --- reusing a fresh render: the render stamp ----------------------------------------------


@dataclass
class RenderSpy:
    """What load_rendered handed to the render stack (which still runs for real)."""

    results: list[Rendered] = field(default_factory=list)


@pytest.fixture
def render_spy(monkeypatch: pytest.MonkeyPatch) -> RenderSpy:
    spy = RenderSpy()
    real = folder_module.render_issue

    def counting(ws: Workspace, issue: Issue, *, folder_name: str = "") -> Rendered:
        spy.results.append(real(ws, issue, folder_name=folder_name))
        return spy.results[-1]

    monkeypatch.setattr(folder_module, "render_issue", counting)
    return spy


def _small_html_limit(ws: Workspace) -> Workspace:
    """``ws`` with compose.max_html_kb = 1, so a render carries a size warning too."""
    compose = ws.config.compose.model_copy(update={"max_html_kb": 1})
    return Workspace(ws.root, ws.config.model_copy(update={"compose": compose}), ws.env)


@pytest.fixture
def stamped(workspace: Workspace) -> Path:
    """An issue folder just rendered by ``render_issue_folder`` (so with a stamp)."""
    folder = _issue_file(workspace.issues_dir, GOOD_JSON)
    render_issue_folder(workspace, folder)
    return folder


def test_a_fresh_render_is_reused_byte_for_byte(
    workspace: Workspace, render_spy: RenderSpy, caplog: pytest.LogCaptureFixture
) -> None:
    ws = _small_html_limit(workspace)
    folder = _issue_file(ws.issues_dir, GOOD_JSON)
    render_issue_folder(ws, folder)
    render_spy.results.clear()
    caplog.set_level(logging.DEBUG, logger="newsletter.compose.folder")

    reused = load_rendered(ws, folder)

    assert render_spy.results == []  # nothing rendered
    assert "render stamp matches" in caplog.text
    fresh = render_issue(ws, read_issue(folder), folder_name=folder.name)
    assert reused.html.encode("utf-8") == fresh.html.encode("utf-8")
    assert reused.text.encode("utf-8") == fresh.text.encode("utf-8")
    # subject, preheader and both kinds of warning (no url; over max_html_kb) as a render gives
    assert reused == fresh
    assert any("has no url" in w for w in reused.warnings)
    assert any("over compose.max_html_kb" in w for w in reused.warnings)
    stamp = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    assert stamp["format"] == 2 and len(stamp["fingerprint"]) == 64
    assert stamp[SEND_HTML] == hashlib.sha256((folder / SEND_HTML).read_bytes()).hexdigest()
    assert stamp[SEND_TXT] == hashlib.sha256((folder / SEND_TXT).read_bytes()).hexdigest()


def test_a_composed_folder_is_reused(
    workspace: Workspace, articles: Path, render_spy: RenderSpy
) -> None:
    folder = _compose(workspace, [str(articles)]).folder
    render_spy.results.clear()
    reused = load_rendered(workspace, folder)
    assert render_spy.results == []
    assert reused == render_issue(workspace, read_issue(folder), folder_name=folder.name)


def _edit_issue_json(ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    path = folder / ISSUE_JSON
    path.write_text(path.read_text(encoding="utf-8").replace('"One."', '"One, by hand."'))
    return ws


def _override_a_template(ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    packaged = resources.files("newsletter") / "templates" / "issue.txt.j2"
    (ws.templates_dir / "issue.txt.j2").write_text(
        packaged.read_text(encoding="utf-8") + "Printed on recycled electrons.\n",
        encoding="utf-8",
    )
    return ws


def _edit_a_nested_template(
    ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    # an include the issue templates could pull in lives in a subfolder
    (ws.templates_dir / "partials").mkdir(parents=True)
    (ws.templates_dir / "partials" / "footer.txt.j2").write_text("new", encoding="utf-8")
    return ws


def _base_url_from_env(ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://letters.example.net/news")
    return load_workspace(ws.root)


def _edit_newsletter_toml(
    ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    path = ws.root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    tagline = f'tagline = "{ws.config.publication.tagline}"'
    assert text.count(tagline) == 1
    path.write_text(text.replace(tagline, 'tagline = "Slower news"'), encoding="utf-8")
    return load_workspace(ws.root)


def _hand_edit_html(ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    path = folder / SEND_HTML
    path.write_text(path.read_text(encoding="utf-8").replace("Second", "Hand-made"))
    return ws


def _hand_edit_text(ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    with open(folder / SEND_TXT, "a", encoding="utf-8") as handle:
        handle.write("P.S. added by hand\n")
    return ws


def _stamp_removed(ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    (folder / STAMP_FILE).unlink()
    return ws


def _stamp_as(content: bytes) -> Callable[[Workspace, Path, pytest.MonkeyPatch], Workspace]:
    def write(ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
        (folder / STAMP_FILE).write_bytes(content)
        return ws

    return write


def _stamp_edited(**changes: Any) -> Callable[[Workspace, Path, pytest.MonkeyPatch], Workspace]:
    def edit(ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
        stamp = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
        stamp.update(changes)
        (folder / STAMP_FILE).write_text(json.dumps(stamp), encoding="utf-8")
        return ws

    return edit


@pytest.mark.parametrize(
    "change",
    [
        _edit_issue_json,
        _override_a_template,
        _edit_a_nested_template,
        _base_url_from_env,
        _edit_newsletter_toml,
        _hand_edit_html,
        _hand_edit_text,
        _stamp_removed,
        _stamp_as(b""),
        _stamp_as(b'{"format": 1, "fingerprint": "'),
        _stamp_as(b"\xff\xfe not UTF-8"),
        _stamp_as(b"[1, 2, 3]"),
        _stamp_edited(format=1),
        _stamp_edited(fingerprint=None),
        _stamp_edited(fingerprint="0" * 64),
        _stamp_edited(**{SEND_HTML: "short"}),
    ],
)
def test_a_stale_or_untrusted_render_is_rendered_again(
    workspace: Workspace,
    stamped: Path,
    render_spy: RenderSpy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    change: Callable[[Workspace, Path, pytest.MonkeyPatch], Workspace],
) -> None:
    ws = change(workspace, stamped, monkeypatch)
    caplog.set_level(logging.DEBUG, logger="newsletter.compose.folder")

    result = load_rendered(ws, stamped)

    assert len(render_spy.results) == 1 and result is render_spy.results[0]
    assert "rendering issue.json now" in caplog.text
    assert "Hand-made" not in result.html and "added by hand" not in result.text
    assert read_issue(stamped).teasers[0].summary in result.text  # the current issue.json


def test_edits_show_in_the_new_render(
    workspace: Workspace, stamped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit_issue_json(workspace, stamped, monkeypatch)
    _override_a_template(workspace, stamped, monkeypatch)
    result = load_rendered(workspace, stamped)
    assert "One, by hand." in result.text and "recycled electrons" in result.text
    # rendering the folder again makes it fresh again
    render_issue_folder(workspace, stamped)
    assert load_rendered(workspace, stamped) == result


def test_writing_parts_without_a_fingerprint_drops_the_stamp(
    workspace: Workspace, stamped: Path
) -> None:
    issue = read_issue(stamped)
    rendered = render_issue(workspace, issue)
    write_issue_folder(stamped, issue, rendered)
    assert not (stamped / STAMP_FILE).exists()
    render_issue_folder(workspace, stamped)
    write_rendered(stamped, rendered)
    assert not (stamped / STAMP_FILE).exists()


def test_no_fingerprint_without_a_readable_input(
    workspace: Workspace, stamped: Path, render_spy: RenderSpy
) -> None:
    unreadable = workspace.templates_dir / "broken-link.j2"
    unreadable.symlink_to(workspace.templates_dir / "missing-target")
    assert render_fingerprint(workspace, (stamped / ISSUE_JSON).read_bytes()) is None
    render_spy.results.clear()
    load_rendered(workspace, stamped)
    assert len(render_spy.results) == 1


def test_issue_html_is_what_a_reader_sees(workspace: Workspace, articles: Path) -> None:
    folder = _compose(workspace, [str(articles)]).folder
    html = (folder / ISSUE_HTML).read_text(encoding="utf-8")
    text = (folder / ISSUE_TXT).read_text(encoding="utf-8")
    for part in (html, text):
        assert "%%" not in part  # no slot left for a person to puzzle over
        assert "Hi reader," in part and "This email was sent to" not in part
        assert "Unsubscribe" not in part and "View in your browser" not in part
    # where the unsubscribe link was, a visitor finds the subscribe form
    assert '<a href="https://brief.example.org/subscribe">Subscribe</a>' in html
    assert "Subscribe: https://brief.example.org/subscribe\n" in text
    # the sender's slotted parts live beside them, out of the way
    assert "%%" in (folder / SEND_HTML).read_text(encoding="utf-8")
    assert "%%" in (folder / SEND_TXT).read_text(encoding="utf-8")


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The process umask set to the common 022 for one test, then restored."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_files_get_the_usual_modes_and_render_keeps_them(
    workspace: Workspace, articles: Path, umask_022: None
) -> None:
    folder = _compose(workspace, [str(articles)]).folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
    # a mode the user chose survives a render
    (folder / ISSUE_HTML).chmod(0o664)
    (folder / SEND_TXT).chmod(0o600)
    render_issue_folder(workspace, folder)
    assert stat.S_IMODE((folder / ISSUE_HTML).stat().st_mode) == 0o664
    assert stat.S_IMODE((folder / SEND_TXT).stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / ISSUE_TXT).stat().st_mode) == 0o644
