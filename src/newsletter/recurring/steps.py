"""What one occurrence of a series does, step by step: select and number, compose (and
mail the review copy), send. Each step is written so a rerun after a crash finds its
work done: the selection is recorded with the number (and composed from that record),
the issue folder is named by the occurrence, a compose that finds it written reuses it,
and the send resumes the ledger's campaign."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from newsletter.compose.folder import issue_key
from newsletter.compose.issue_file import ISSUE_JSON, decode_issue, read_issue_bytes
from newsletter.compose.selection import Selection, article_keys, remember_issue
from newsletter.config import Recurring
from newsletter.errors import FolderTakenError
from newsletter.mail.slots import defuse
from newsletter.models import Article
from newsletter.render.filters import long_date
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)


class SendStopped(Exception):
    """The send stopped part-way on request (``serve`` shutting down): resume it later."""


def local_day(ws: Workspace, due_at: datetime) -> str:
    """The due time's date in the publication's zone, as YYYY-MM-DD."""
    return due_at.astimezone(ZoneInfo(ws.config.publication.timezone)).date().isoformat()


def occurrence_folder(ws: Workspace, series: Recurring, due_at: datetime) -> Path:
    """The issue folder of one occurrence: ``<issues_dir>/<local date>-<series>``, the same
    on every run, so a rerun after a crash finds what the first run wrote."""
    return ws.issues_dir / f"{local_day(ws, due_at)}-{series.name}"


def source_paths(ws: Workspace, series: Recurring) -> list[str]:
    """The series' sources with paths made absolute against the workspace (URLs kept)."""
    return [
        source if "://" in source else str((ws.root / source).resolve())
        for source in series.sources
    ]


def select_for(ws: Workspace, series: Recurring) -> Selection:
    """The articles the series would feature now: new ones only, newest first, at most
    ``max_articles``. A source that cannot be read is logged and left out."""
    from newsletter.compose.build import gather_articles

    selection, skipped = gather_articles(
        ws, source_paths(ws, series), skip_bad=True, limit=series.max_articles
    )
    for source, reason in skipped:
        log.warning("series %s: %s left out: %s", series.name, source, reason)
    return selection


def subject_for(ws: Workspace, series: Recurring, number: int, due_at: datetime, top: str) -> str:
    """The series' subject with {number}, {date}, {top_title} and {publication} filled."""
    day = datetime.fromisoformat(local_day(ws, due_at)).date()
    # the headline is the feed's text: a slot mark in it must stay text
    return series.subject.format(
        number=number,
        date=long_date(day),
        top_title=defuse(" ".join(top.split())),
        publication=ws.config.publication.name,
    )


def selection_record(articles: list[Article]) -> str:
    """The selected ``articles`` as the JSON text an occurrence records with its number."""
    return json.dumps([article.to_dict() for article in articles], ensure_ascii=False)


def articles_of(record: str) -> list[Article]:
    """The articles of a ``selection_record`` (fields this version does not know dropped)."""
    known = Article.__dataclass_fields__
    return [
        Article(**{name: value for name, value in item.items() if name in known})
        for item in json.loads(record)
    ]


def selected_keys(articles: list[Article]) -> set[str]:
    """The dedupe keys of ``articles``: what numbering reserves as featured."""
    return set().union(*(article_keys(a.url, a.title, a.guid) for a in articles))


def compose_occurrence(
    ws: Workspace,
    series: Recurring,
    due_at: datetime,
    number: int,
    articles: list[Article] | None,
) -> Path:
    """Write the occurrence's issue folder from ``articles`` (the selection recorded
    with its number; None, for an occurrence numbered without one, selects anew) -> its
    path; a folder already written (a rerun after a crash, or a racing process) is reused
    as it is and recorded as featured."""
    from newsletter.compose.build import compose_articles

    folder = occurrence_folder(ws, series, due_at)
    if (folder / ISSUE_JSON).is_file():
        _remember_existing(ws, folder)
        return folder
    if articles is None:
        articles = select_for(ws, series).chosen
    if not articles:
        raise NothingNewError(f"series {series.name}: no new article to compose #{number}")
    subject = subject_for(ws, series, number, due_at, articles[0].title)
    day = datetime.fromisoformat(local_day(ws, due_at)).date()
    try:
        compose_articles(ws, articles, subject=subject, out=folder, day=day)
    except FolderTakenError:
        _remember_existing(ws, folder)
    return folder


class NothingNewError(Exception):
    """A numbered occurrence without a recorded selection whose articles were all
    featured meanwhile."""


def _remember_existing(ws: Workspace, folder: Path) -> None:
    """Record the teasers of an issue folder written by an earlier run."""
    issue = decode_issue(read_issue_bytes(folder), folder / ISSUE_JSON)
    remember_issue(ws, folder, issue, [])


def review_copy(ws: Workspace, series: Recurring, folder: Path) -> str:
    """Mail the [TEST] copy of ``folder`` to the series' reviewers -> a note for the log."""
    from newsletter.deliver import send_test

    report = send_test(ws, folder, series.review_to, list_name=series.list)
    return f"review copy to {', '.join(series.review_to)}: {report.summary()}"


def send_occurrence(
    ws: Workspace, series: Recurring, folder: Path, stop: threading.Event | None
) -> str:
    """Send ``folder`` to the series' list through the ledger -> its summary line.

    A campaign that finished before (a run that ended just before a crash) counts as
    sent; a stop part-way raises SendStopped.
    """
    from newsletter.deliver import send_issue
    from newsletter.errors import AlreadySentError

    try:
        report = send_issue(ws, folder, list_name=series.list, stop=stop)
    except AlreadySentError as exc:
        return f"already sent: {exc.message}"
    if report.interrupted:
        raise SendStopped(report.summary())
    return report.summary()


def key_of(ws: Workspace, folder: Path) -> str:
    """The folder as the ledger stores it."""
    return issue_key(ws, folder)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC."""
    return moment.astimezone(UTC)
