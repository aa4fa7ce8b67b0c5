"""The ``newsletter recurring`` verbs and ``approve``: what each series will do next and
what it would feature, pausing, resuming, skipping the next time, approving an issue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from newsletter.config import Recurring
from newsletter.errors import NewsletterError
from newsletter.recurrence import next_occurrence
from newsletter.recurring.steps import key_of, select_for
from newsletter.store import open_store_for, utcnow
from newsletter.store.occurrences import (
    APPROVED,
    COMPOSED,
    OPEN_STATES,
    PENDING,
    SKIPPED,
    Occurrence,
    add_occurrence,
    find_occurrence,
    finish_unheld,
    is_paused,
    series_occurrences,
    set_paused,
)
from newsletter.workspace import Workspace

__all__ = [
    "SeriesStatus",
    "approve_issue",
    "pause_series",
    "series_status",
    "skip_next",
]


@dataclass(frozen=True)
class SeriesStatus:
    """One series as ``recurring list`` and ``show`` print it: its settings, whether it is
    paused, its next time not skipped (aware UTC; None if the rule has ended) and whether
    a time before it was skipped, the titles it would feature now, and its recent
    occurrences."""

    series: Recurring
    zone: ZoneInfo
    paused: bool
    next_at: datetime | None
    next_skipped: bool
    would_feature: list[str]
    recent: list[Occurrence]


def find_series(ws: Workspace, name: str) -> Recurring:
    """The configured series ``name``; NewsletterError naming the ones there are."""
    for series in ws.config.recurring:
        if series.name == name:
            return series
    names = ", ".join(series.name for series in ws.config.recurring) or "none configured"
    raise NewsletterError(
        f"no recurring series named {name!r} (series: {names})",
        hint="add a [[recurring]] table to newsletter.toml, or check the name",
    )


def series_status(
    ws: Workspace, name: str | None = None, *, preview: bool = True
) -> list[SeriesStatus]:
    """Every series (or the one ``name``) -> its SeriesStatus; ``preview`` reads the
    sources to list what it would feature now (dedupe applied)."""
    chosen = [find_series(ws, name)] if name else list(ws.config.recurring)
    zone = ZoneInfo(ws.config.publication.timezone)
    found = []
    for series in chosen:
        with open_store_for(ws) as store:
            recent = series_occurrences(store, series.name)
            paused = is_paused(store, series.name)
        next_at, skipped = _next_time(ws, series, recent)
        titles = [article.title for article in select_for(ws, series).chosen] if preview else []
        found.append(SeriesStatus(series, zone, paused, next_at, skipped, titles, recent))
    return found


def _next_time(
    ws: Workspace, series: Recurring, recent: list[Occurrence]
) -> tuple[datetime | None, bool]:
    """(the next time ``series`` comes due and is not skipped: an open occurrence's, else
    the rule's next after now; whether a time before it was skipped by hand)."""
    waiting = [item.due_at for item in recent if item.state in OPEN_STATES]
    if waiting:
        return min(waiting), False
    zone = ZoneInfo(ws.config.publication.timezone)
    skipped = {item.due_at for item in recent if item.state == SKIPPED}
    found = next_occurrence(series.every, zone, utcnow())
    passed = False
    while found is not None and found in skipped:
        passed = True
        found = next_occurrence(series.every, zone, found)
    return found, passed


def pause_series(ws: Workspace, name: str, paused: bool) -> bool:
    """Pause (or resume) series ``name`` -> whether that changed anything. A paused
    series' times are recorded as skipped when they come, and use no number."""
    series = find_series(ws, name)
    with open_store_for(ws) as store:
        return set_paused(store, series.name, paused)


def skip_next(ws: Workspace, name: str) -> datetime:
    """Skip the next time of series ``name`` -> that time (aware UTC).

    Raises NewsletterError when it is already being composed or sent, or the rule has ended.
    """
    series = find_series(ws, name)
    with open_store_for(ws) as store:
        recent = series_occurrences(store, series.name)
    due_at, _ = _next_time(ws, series, recent)
    if due_at is None:
        raise NewsletterError(f"series {name!r} has no next time: its rule has ended")
    with open_store_for(ws) as store:
        note = "skipped with `newsletter recurring skip`"
        if add_occurrence(store, series.name, due_at, state=SKIPPED, note=note):
            return due_at
        current = next(
            item for item in series_occurrences(store, series.name) if item.due_at == due_at
        )
        if current.state == PENDING and finish_unheld(store, current, SKIPPED, note):
            return due_at
    raise NewsletterError(
        f"series {name!r}: the time {due_at:%Y-%m-%d %H:%M} UTC is already {current.state}",
        hint='a composed issue can be left unsent by not approving it (approval = "required")',
    )


def approve_issue(ws: Workspace, issue_dir: Path) -> Occurrence:
    """Let the composed issue in ``issue_dir`` of a series with ``approval = "required"``
    go out at its time -> the occurrence as it was. NewsletterError when the folder is
    missing, no occurrence's issue or past approving."""
    if not issue_dir.is_dir():
        raise NewsletterError(
            f"{issue_dir}: no such folder",
            hint="name an issue folder: newsletter approve ISSUE_DIR",
        )
    key = key_of(ws, issue_dir)
    with open_store_for(ws) as store:
        found = find_occurrence(store, issue_key=key)
        if found is None:
            raise NewsletterError(
                f"{issue_dir}: not an issue a recurring series composed",
                hint="send a hand-made issue with `newsletter send`",
            )
        if found.state == APPROVED:
            return found
        if found.state != COMPOSED or not finish_unheld(store, found, APPROVED, "approved"):
            raise NewsletterError(
                f"{issue_dir}: issue #{found.number} of {found.series} is {found.state}, "
                "not waiting for approval"
            )
    return found
