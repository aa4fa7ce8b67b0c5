"""Issue folders: compose one from sources, read and write issue.json, re-render it.

An issue folder holds ``issue.json`` (the hand-editable source of truth), the rendered
``issue.html`` and ``issue.txt`` as a reader sees them (slots filled with the
publication's neutral stand-ins), and the parts the sender fills per recipient,
``.send.html`` and ``.send.txt`` (slots unfilled), with ``.render.json`` (see
``render_stamp``) saying what those were rendered from, so ``load_rendered`` can reuse
them while they are fresh. Every write goes to a temporary name first and is renamed
into place, so a failed compose or render never leaves a half-written folder or file
behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import json.scanner
import logging
import os
import re
import secrets
import shutil
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from newsletter.errors import RenderError, SourceError
from newsletter.models import Article, Issue, Teaser
from newsletter.render.filters import long_date
from newsletter.render.pipeline import Rendered, render_issue, rendered_from
from newsletter.render.stamp import (
    SEND_HTML,
    SEND_TXT,
    STAMP_FILE,
    render_fingerprint,
    stamp_text,
    stamped_parts,
)
from newsletter.slots import defuse
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

ISSUE_JSON = "issue.json"
ISSUE_HTML = "issue.html"
ISSUE_TXT = "issue.txt"
SLUG_MAX = 60
PREHEADER_MAX = 140


@dataclass(frozen=True)
class ComposeResult:
    """What ``compose_issue`` made: the ``folder`` written, the ``issue`` in it, the
    sources ``skipped`` (source, reason) with --skip-bad, render ``warnings`` and the size
    of issue.html."""

    folder: Path
    issue: Issue
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    html_bytes: int = 0


@dataclass(frozen=True)
class RenderResult:
    """What ``render_issue_folder`` rewrote: the ``folder``, render ``warnings``, and
    ``html_bytes``, the size of issue.html."""

    folder: Path
    warnings: list[str]
    html_bytes: int


# --- issue.json: reading with line numbers ------------------------------------------------


NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _TeaserFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    title: NonEmpty
    summary: str
    url: str = ""
    image: str = ""
    image_alt: str = ""
    byline: str = ""
    published: str = ""
    source: str = ""

    @field_validator("url", "image")
    @classmethod
    def _web_address(cls, value: str) -> str:
        # a link or image in a mail must be a web address: "javascript:" and typos never ship
        value = value.strip()
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc or " " in value):
            raise ValueError(f"{value!r} is not a web address like https://example.org/story")
        return value


class _IssueFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    subject: NonEmpty
    date: str
    preheader: str = ""
    intro: str = ""
    teasers: list[_TeaserFile]

    @field_validator("date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date like 2026-11-28") from None
        return value

    @field_validator("teasers")
    @classmethod
    def _at_least_one(cls, value: list[_TeaserFile]) -> list[_TeaserFile]:
        if not value:
            raise ValueError("an issue needs at least one teaser")
        return value


class _LocatedDict(dict[str, Any]):
    """A JSON object that remembers where in the text it starts and ends."""

    start: int = 0
    end: int = 0


class _LocatingDecoder(json.JSONDecoder):
    """json.JSONDecoder whose objects carry their text offsets, for error line numbers."""

    # set by JSONDecoder.__init__, not declared in the stdlib stubs
    parse_object: Callable[..., tuple[dict[str, Any], int]]
    scan_once: Callable[[str, int], tuple[Any, int]]

    def __init__(self) -> None:
        super().__init__()
        plain_object = self.parse_object

        def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[dict[str, Any], int]:
            obj, end = plain_object(s_and_end, *args)
            located = _LocatedDict(obj)
            located.start, located.end = s_and_end[1] - 1, end
            return located, end

        self.parse_object = parse_object
        # the C scanner ignores parse_object; the pure-Python one calls it
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _field_line(text: str, data: Any, loc: tuple[str | int, ...]) -> int | None:
    """The line of the field at ``loc`` (or of the nearest object holding it) in ``text``."""
    node, line = data, None
    for part in loc:
        if isinstance(node, _LocatedDict):
            line = _line_of(text, node.start)
            if isinstance(part, str):
                found = text.find(json.dumps(part), node.start, node.end)
                if found >= 0:
                    line = _line_of(text, found)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    else:
        if isinstance(node, _LocatedDict):
            line = _line_of(text, node.start)
    return line


def _field_name(loc: tuple[str | int, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else part)
    return name or "(top level)"


def _problem(item: Any) -> str:
    if item["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    if item["type"] == "missing":
        return "missing"
    return str(item["msg"]).removeprefix("Value error, ")


def parse_issue(text: str, path: Path) -> Issue:
    """issue.json ``text`` (read from ``path``, named in errors) -> Issue.

    Raises RenderError naming the file, the line and the field of the first problem.
    """
    hint = "fix issue.json and run newsletter render again"
    try:
        data = _LocatingDecoder().decode(text)
    except json.JSONDecodeError as exc:
        raise RenderError(
            f"{path}, line {exc.lineno}: invalid JSON: {exc.msg}", hint=hint
        ) from None
    if not isinstance(data, dict):
        raise RenderError(
            f"{path}, line 1: must hold one JSON object with subject, date and teasers", hint=hint
        )
    try:
        model = _IssueFile.model_validate(data)
    except ValidationError as exc:
        item = exc.errors()[0]
        loc = tuple(item["loc"])
        line = _field_line(text, data, loc) or 1
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RenderError(
            f"{path}, line {line}: {_field_name(loc)}: {_problem(item)}{more}", hint=hint
        ) from None
    return Issue(
        subject=model.subject,
        date=model.date,
        preheader=model.preheader,
        intro=model.intro,
        teasers=[Teaser(**teaser.model_dump()) for teaser in model.teasers],
    )


def read_issue(folder: Path) -> Issue:
    """Read ``folder``/issue.json -> Issue; a missing or invalid file -> RenderError."""
    return decode_issue(read_issue_bytes(folder), folder / ISSUE_JSON)


def read_issue_bytes(folder: Path) -> bytes:
    """The bytes of ``folder``/issue.json; a missing folder or file -> RenderError."""
    path = folder / ISSUE_JSON
    if not folder.is_dir():
        raise RenderError(
            f"{folder}: no such issue folder",
            hint="check the path, or run newsletter compose to make one",
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RenderError(
            f"{path}: not found", hint="an issue folder is made by newsletter compose"
        ) from None
    except OSError as exc:
        raise RenderError(f"{path}: cannot read ({exc.strerror})") from None
    return raw


def decode_issue(raw: bytes, path: Path) -> Issue:
    """The bytes of issue.json (read from ``path``, named in errors) -> Issue; RenderError
    naming the line when they are not UTF-8 or not a valid issue."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of(raw.decode("utf-8", "replace"), exc.start)
        raise RenderError(f"{path}, line {line}: not UTF-8 text", hint="save it as UTF-8") from None
    return parse_issue(text, path)


# --- writing, atomically ------------------------------------------------------------------


def issue_json(issue: Issue) -> str:
    """The text of issue.json for ``issue``: pretty, UTF-8 characters kept as they are."""
    return json.dumps(issue.to_dict(), ensure_ascii=False, indent=2) + "\n"


def _write_file(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _new_temp_file(folder: Path, name: str) -> Path:
    """A new empty file in ``folder`` named after ``name``, with the mode a plain
    ``open()`` gives (0666 less the umask; mkstemp's 0600 would stick after the rename)."""
    while True:
        path = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue


def _replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename;
    an existing file's permission bits are kept."""
    temp = _new_temp_file(path.parent, path.name)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temp, stat.S_IMODE(os.stat(path).st_mode))
        _write_file(temp, text)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _new_temp_dir(parent: Path, name: str) -> Path:
    """A new empty folder in ``parent`` named after ``name``, with the mode a plain
    ``mkdir`` gives (0777 less the umask; mkdtemp's 0700 would stick after the rename)."""
    while True:
        path = parent / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            path.mkdir(0o777)
            return path
        except FileExistsError:
            continue


def _is_empty_dir(folder: Path) -> bool:
    return folder.is_dir() and not any(folder.iterdir())


class FolderTakenError(RenderError):
    """The issue folder to create exists already and is not empty."""


def write_issue_folder(
    folder: Path,
    issue: Issue,
    rendered: Rendered,
    *,
    exclusive: bool = False,
    fingerprint: str | None = None,
) -> None:
    """Write issue.json, issue.html and issue.txt (the reader's view) and the parts to
    send (.send.html, .send.txt) into ``folder``, atomically.

    With ``fingerprint`` (``render_stamp.render_fingerprint`` of the issue.json text
    written here) the render stamp .render.json is written last; without, an existing
    one is removed. A new (or empty) folder is built as a temporary sibling and renamed
    into place, so it appears whole or not at all. In an existing folder each file is
    replaced by a rename, unless ``exclusive``: then a folder that is not empty (even
    one another process made a moment ago) raises FolderTakenError and is left alone.
    Raises RenderError if the folder cannot be written.
    """
    files = {
        ISSUE_JSON: issue_json(issue),
        **_rendered_files(rendered),
    }
    if fingerprint is not None:
        files[STAMP_FILE] = stamp_text(fingerprint, rendered.html, rendered.text)
    taken = FolderTakenError(
        f"{folder}: exists and is not empty", hint="name a new or empty folder"
    )
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists() and not _is_empty_dir(folder):
            if exclusive:
                raise taken
            for name, text in files.items():
                _replace_file(folder / name, text)
            if fingerprint is None:
                (folder / STAMP_FILE).unlink(missing_ok=True)
            return
        staging = _new_temp_dir(folder.parent, folder.name)
        try:
            for name, text in files.items():
                _write_file(staging / name, text)
            # rename() onto an empty directory replaces it; onto a full one it fails
            os.rename(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and exclusive:
            raise taken from None
        raise RenderError(
            f"{folder}: cannot write the issue folder ({exc.strerror or exc})",
            hint="check the folder exists, is writable and is not in use",
        ) from None


def _rendered_files(rendered: Rendered) -> dict[str, str]:
    """File name -> text of the rendered parts: the reader's view and the parts to send."""
    return {
        ISSUE_HTML: rendered.reader_html,
        ISSUE_TXT: rendered.reader_text,
        SEND_HTML: rendered.html,
        SEND_TXT: rendered.text,
    }


def write_rendered(folder: Path, rendered: Rendered, *, fingerprint: str | None = None) -> None:
    """Replace issue.html, issue.txt, .send.html and .send.txt in ``folder``, each by a
    rename; issue.json stays.

    Then the render stamp: written for ``fingerprint``, else removed. It goes last, so
    a reader who finds the new parts beside the old stamp sees them disagree.
    """
    try:
        for name, text in _rendered_files(rendered).items():
            _replace_file(folder / name, text)
        if fingerprint is None:
            (folder / STAMP_FILE).unlink(missing_ok=True)
        else:
            _replace_file(
                folder / STAMP_FILE, stamp_text(fingerprint, rendered.html, rendered.text)
            )
    except OSError as exc:
        raise RenderError(f"{folder}: cannot write ({exc.strerror or exc})") from None


# --- compose ------------------------------------------------------------------------------


def today(ws: Workspace) -> date:
    """Today's date in the publication's time zone."""
    return datetime.now(ZoneInfo(ws.config.publication.timezone)).date()


def slugify(text: str, max_length: int = SLUG_MAX) -> str:
    """``"Weekly brief — Köln!"`` -> ``"weekly-brief-koln"`` (ASCII, at most ``max_length``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rsplit("-", 1)[0] or slug[:max_length]
    return slug or "issue"


def default_subject(ws: Workspace, day: date) -> str:
    """``"<publication name> — 28 November 2026"``."""
    return f"{ws.config.publication.name} — {long_date(day)}"


def default_preheader(teasers: list[Teaser], max_length: int = PREHEADER_MAX) -> str:
    """Inbox preview text from the first headlines, joined by " · ", cut at a word.

    The preheader is an editor field, where ``%%name%%`` is a slot: a headline's is defused.
    """
    text = defuse(" · ".join(" ".join(teaser.title.split()) for teaser in teasers[:3]))
    if len(text) <= max_length:
        return text
    return text[: max_length - 1].rsplit(" ", 1)[0].rstrip(" ·,;:") + "…"


def _candidate_folders(base: Path) -> Iterator[Path]:
    yield base
    number = 2
    while True:
        yield base.with_name(f"{base.name}-{number}")
        number += 1


def default_folder(ws: Workspace, issue: Issue) -> Path:
    """``<issues_dir>/<date>-<slug of subject>``, with -2, -3 … added when taken.

    The issue's date written out in the subject is left out of the slug, since the
    folder name starts with it already.
    """
    subject = issue.subject.replace(long_date(date.fromisoformat(issue.date)), " ")
    base = ws.issues_dir / f"{issue.date}-{slugify(subject)}"
    return next(path for path in _candidate_folders(base) if not path.exists())


def _check_out_folder(out: Path) -> None:
    if out.exists() and not _is_empty_dir(out):
        what = "a file" if not out.is_dir() else "a folder that is not empty"
        raise RenderError(
            f"{out}: --out is {what}",
            hint="name a new or empty folder, or leave out --out for a fresh one under issues/",
        )


def _read_articles(
    sources: list[str], *, timeout: float, skip_bad: bool
) -> tuple[list[Article], list[tuple[str, str]]]:
    """Every article of every source (folders expanded), plus the (source, reason) skipped."""
    # imported here: the readers (trafilatura, feedparser) cost ~0.5 s to import, and
    # reading, rendering and sending an issue never need them
    from newsletter.ingest import expand_sources, read_source

    articles: list[Article] = []
    skipped: list[tuple[str, str]] = []
    for source in expand_sources(sources):
        try:
            found = read_source(source, timeout=timeout)
            if not found:
                raise SourceError(f"{source}: holds no article")
        except SourceError as exc:
            if not skip_bad:
                raise
            log.info("skipping %s: %s", source, exc)
            skipped.append((source, str(exc)))
            continue
        articles.extend(found)
    return articles, skipped


def _without_duplicates(articles: list[Article]) -> tuple[list[Article], list[str]]:
    """``articles`` with repeats (same URL, else same title) removed, and a warning for each."""
    kept: list[Article] = []
    seen: dict[str, Article] = {}
    warnings = []
    for article in articles:
        key = article.url or " ".join(article.title.lower().split())
        if key in seen:
            warnings.append(
                f"{article.source}: same article as {seen[key].source} "
                f"({article.title!r}), left out"
            )
            continue
        seen[key] = article
        kept.append(article)
    return kept, warnings


def build_issue(
    ws: Workspace, articles: list[Article], *, subject: str | None, intro: str, preheader: str
) -> Issue:
    """Teasers for ``articles`` (summarised to the configured word budget) -> Issue dated today."""
    from newsletter.summarize import make_teaser  # pulls in the readers: see _read_articles

    compose = ws.config.compose
    teasers = [
        make_teaser(
            article, min_words=compose.summary_min_words, max_words=compose.summary_max_words
        )
        for article in articles
    ]
    day = today(ws)
    return Issue(
        subject=(subject or "").strip() or default_subject(ws, day),
        date=day.isoformat(),
        teasers=teasers,
        preheader=preheader.strip() or default_preheader(teasers),
        intro=intro.strip(),
    )


def _write_new_folder(
    ws: Workspace, issue: Issue, rendered: Rendered, out: Path | None, fingerprint: str | None
) -> Path:
    """Write the issue into ``out`` or a fresh default folder; never into someone else's."""
    while True:
        folder = out if out is not None else default_folder(ws, issue)
        try:
            write_issue_folder(folder, issue, rendered, exclusive=True, fingerprint=fingerprint)
            return folder
        except FolderTakenError:
            if out is not None:
                raise
            # another compose took this name between our look and our rename: next one
            log.info("%s was taken meanwhile; trying the next name", folder)


def compose_issue(
    ws: Workspace,
    sources: list[str],
    *,
    subject: str | None,
    intro: str,
    preheader: str,
    out: Path | None,
    skip_bad: bool,
) -> ComposeResult:
    """Read ``sources`` (files, folders, feeds, URLs), summarise, render, write a new issue folder.

    The folder is ``out`` (which must be new or empty) or ``<issues_dir>/<date>-<slug>``.
    A bad source raises its SourceError before anything is written, unless
    ``skip_bad``: then it is listed in ``skipped``. No article left -> SourceError.
    """
    if out is not None:
        _check_out_folder(out)
    articles, skipped = _read_articles(
        sources, timeout=ws.config.compose.fetch_timeout, skip_bad=skip_bad
    )
    if not articles:
        raise SourceError(
            "no article could be read from " + ", ".join(sources),
            hint="check the paths and URLs; newsletter extract SOURCE shows what one yields",
        )
    articles, warnings = _without_duplicates(articles)
    issue = build_issue(ws, articles, subject=subject, intro=intro, preheader=preheader)
    # taken before rendering: a template edited meanwhile makes the stamp stale, not wrong
    fingerprint = render_fingerprint(ws, issue_json(issue).encode("utf-8"))
    rendered = render_issue(ws, issue)
    folder = _write_new_folder(ws, issue, rendered, out, fingerprint)
    log.info("composed %d teasers into %s", len(issue.teasers), folder)
    return ComposeResult(
        folder=folder,
        issue=issue,
        skipped=skipped,
        warnings=warnings + rendered.warnings,
        html_bytes=len(rendered.reader_html.encode("utf-8")),
    )


def render_issue_folder(ws: Workspace, folder: Path) -> RenderResult:
    """Re-render ``folder`` from its issue.json (never re-summarising) -> RenderResult.

    Rewrites issue.html, issue.txt and the render stamp atomically; a missing folder or
    issue.json, or an invalid one, raises RenderError naming the file, line and field.
    """
    raw = read_issue_bytes(folder)
    issue = decode_issue(raw, folder / ISSUE_JSON)
    # taken before rendering: a template edited meanwhile makes the stamp stale, not wrong
    fingerprint = render_fingerprint(ws, raw)
    rendered = render_issue(ws, issue)
    write_rendered(folder, rendered, fingerprint=fingerprint)
    return RenderResult(
        folder=folder,
        warnings=list(rendered.warnings),
        html_bytes=len(rendered.reader_html.encode("utf-8")),
    )


def load_rendered(ws: Workspace, folder: Path) -> Rendered:
    """``folder``'s issue rendered -> Rendered: .send.html and .send.txt as they are when
    the render stamp proves them fresh (see ``render_stamp``), else rendered now from
    issue.json (the folder is left as it is).

    Either way the subject, preheader and warnings come from issue.json as
    ``render_issue`` gives them. Raises RenderError for a missing or invalid issue.json
    or a template problem.
    """
    raw = read_issue_bytes(folder)
    issue = decode_issue(raw, folder / ISSUE_JSON)
    parts = stamped_parts(ws, folder, raw)
    if parts is not None:
        log.debug("%s: using the parts as rendered (render stamp matches)", folder)
        html, text = parts
        return rendered_from(ws, issue, html=html, text=text)
    log.debug("%s: rendering issue.json now (no fresh render in the folder)", folder)
    return render_issue(ws, issue)


def extract_source(ws: Workspace, source: str) -> list[dict[str, Any]]:
    """What ``source`` yields: one dict per article (its fields, ``summary`` = the teaser)."""
    from newsletter.ingest import read_source
    from newsletter.summarize import make_teaser

    compose = ws.config.compose
    items = []
    for article in read_source(source, timeout=compose.fetch_timeout):
        teaser = make_teaser(
            article, min_words=compose.summary_min_words, max_words=compose.summary_max_words
        )
        item = article.to_dict()
        item["summary"] = teaser.summary
        item["image_alt"] = teaser.image_alt or article.image_alt
        items.append(item)
    return items
