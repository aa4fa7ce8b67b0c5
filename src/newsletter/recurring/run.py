"""One scheduler tick for the recurring series: ``run_recurring``, called by
``schedule.run_due`` (so ``newsletter run-due`` and ``serve`` both drive the series).

For each series it records the occurrences that came due (a paused series' as skipped,
ones beyond the missed window as missed), then moves each open occurrence as far as the
clock allows under its lease: at review time (send time without review) it selects the
new articles (too few: skipped, no number), numbers the occurrence, composes its issue
and mails the review copy; at send time it sends through the ledger, unless it waits
for ``newsletter approve``. An occurrence missed beyond ``serve.missed_window_hours``
is recorded as missed and never sent late.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from newsletter.compose.issue_file import ISSUE_JSON
from newsletter.config import Recurring
from newsletter.errors import NewsletterError
from newsletter.models import Article
from newsletter.recurrence import occurrences_between, parse_duration
from newsletter.recurring.steps import (
    NothingNewError,
    SendStopped,
    articles_of,
    compose_occurrence,
    key_of,
    local_day,
    occurrence_folder,
    review_copy,
    select_for,
    selected_keys,
    selection_record,
    send_occurrence,
)
from newsletter.store import Store
from newsletter.store.featured import forget_featured
from newsletter.store.lease import RUNNING, Heartbeat, holder_is_dead
from newsletter.store.occurrences import (
    APPROVED,
    COMPOSED,
    COMPOSING,
    MISSED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    Occurrence,
    add_occurrence,
    advance,
    beat,
    claim,
    finish_unheld,
    get_occurrence,
    is_paused,
    last_due,
    number_it,
    open_occurrences,
    recorded_selection,
    release,
)
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

# a series unseen for longer than this records at most this many missed times
MAX_BACKLOG = 50


@dataclass
class RecurringReport:
    """What a tick did to the series: one line per step, and the lines that are problems
    (missed, failed) so ``run-due`` exits non-zero for cron."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def note(self, text: str, *, problem: bool = False) -> None:
        """Add one line (and log it)."""
        (log.warning if problem else log.info)("%s", text)
        self.lines.append(text)
        if problem:
            self.problems.append(text)


@dataclass(frozen=True)
class Tick:
    """The settings one tick runs with."""

    worker: str
    now: datetime
    window: timedelta
    stale_before: datetime
    heartbeat_seconds: float
    stop: threading.Event


def review_lead(series: Recurring) -> timedelta:
    """How long before the send time the series composes (0 without review)."""
    return parse_duration(series.review_before) if series.review_before else timedelta(0)


def _record_due(ws: Workspace, store: Store, series: Recurring, tick: Tick) -> None:
    """Record the occurrences of ``series`` whose compose time has come and that have no
    row yet: pending, or skipped (paused), or missed (beyond the window)."""
    zone = ZoneInfo(ws.config.publication.timezone)
    start = last_due(store, series.name) or tick.now - tick.window
    horizon = tick.now + review_lead(series)
    paused = is_paused(store, series.name)
    due_times = list(occurrences_between(series.every, zone, start, horizon))[-MAX_BACKLOG:]
    for due_at in due_times:
        if paused:
            add_occurrence(store, series.name, due_at, state=SKIPPED, note="series paused")
        elif tick.now - due_at > tick.window:
            add_occurrence(store, series.name, due_at, state=MISSED, note="nothing ran it in time")
        else:
            add_occurrence(store, series.name, due_at)


def run_recurring(
    ws: Workspace,
    store: Store,
    *,
    worker: str,
    now: datetime,
    stale_after: timedelta,
    heartbeat_seconds: float,
    stop: threading.Event,
) -> RecurringReport:
    """Drive every configured series one tick at ``now`` (see module docstring) ->
    RecurringReport. A failing step is reported and retried at the next tick."""
    report = RecurringReport()
    tick = Tick(
        worker=worker,
        now=now,
        window=timedelta(hours=ws.config.serve.missed_window_hours),
        stale_before=now - stale_after,
        heartbeat_seconds=heartbeat_seconds,
        stop=stop,
    )
    for series in ws.config.recurring:
        if stop.is_set():
            break
        _record_due(ws, store, series, tick)
        for seen in open_occurrences(store, series.name):
            if stop.is_set():
                break
            _act(ws, store, series, seen, tick, report)
    return report


def _act(
    ws: Workspace,
    store: Store,
    series: Recurring,
    seen: Occurrence,
    tick: Tick,
    report: RecurringReport,
) -> None:
    """Claim ``seen`` if its time has come and run its steps under a heartbeat."""
    label = f"{series.name} {seen.due_at:%Y-%m-%d %H:%M} UTC"
    if tick.now - seen.due_at > tick.window:
        _miss(ws, store, series, seen, label, tick, report)
        return
    # a compose cut short is taken up again at once, so the review copy still comes early
    composing = seen.state in (PENDING, COMPOSING)
    starts = seen.due_at - (review_lead(series) if composing else timedelta(0))
    if tick.now < starts:
        return
    dead = seen.lease_state == RUNNING and holder_is_dead(seen.claimed_by)
    claimed = claim(store, seen, tick.worker, tick.now, stale_before=tick.stale_before, dead=dead)
    if claimed is None:
        log.debug("%s is being worked on by another process", label)
        return
    beating = functools.partial(beat, store, claimed.id, tick.worker)
    try:
        with Heartbeat(beating, tick.heartbeat_seconds, name=f"series {label}"):
            note = _steps(ws, store, series, claimed, tick, report, label)
    except SendStopped as exc:
        note = f"send stopped ({exc}); resumes at the next tick"
        report.note(f"{label}: {note}")
    except NothingNewError as exc:
        note = str(exc)
        report.note(f"{label}: {note}", problem=True)
    except NewsletterError as exc:
        note = f"failed: {exc}"
        report.note(f"{label}: {note}; tried again at the next tick", problem=True)
    release(store, claimed.id, tick.worker, note=note[:2000])


def _miss(
    ws: Workspace,
    store: Store,
    series: Recurring,
    seen: Occurrence,
    label: str,
    tick: Tick,
    report: RecurringReport,
) -> None:
    """Record ``seen`` missed unless a live process still works on it; the articles it
    reserved when numbered are freed again when its issue was never written."""
    held = seen.lease_state == RUNNING and not holder_is_dead(seen.claimed_by)
    if held and (seen.heartbeat_at or seen.claimed_at or tick.now) >= tick.stale_before:
        return
    hours = tick.window.total_seconds() / 3600
    note = f"missed: not done within {hours:g} h of its time ({seen.state}); never sent late"
    if finish_unheld(store, seen, MISSED, note):
        report.note(f"{label}: {note}", problem=True)
        written = (occurrence_folder(ws, series, seen.due_at) / ISSUE_JSON).is_file()
        if seen.issue_key and not written:
            forget_featured(store, seen.issue_key)


def _select_and_number(
    ws: Workspace,
    store: Store,
    series: Recurring,
    held: Occurrence,
    tick: Tick,
    report: RecurringReport,
    label: str,
) -> tuple[int, list[Article]] | str:
    """Select the new articles for the held pending occurrence and, when there are
    enough, number it with them recorded -> (number, articles), or the note it ended
    with (skipped: no number used; or lost to another process)."""
    selection = select_for(ws, series)
    found = len(selection.chosen)
    if found < series.min_articles:
        note = f"skipped: {found} new article(s), fewer than min_articles {series.min_articles}"
        advance(store, held.id, tick.worker, state=SKIPPED, note=note)
        report.note(f"{label}: {note}; no number used")
        return note
    number = number_it(
        store,
        held.id,
        tick.worker,
        key_of(ws, occurrence_folder(ws, series, held.due_at)),
        selection=selection_record(selection.chosen),
        issue_date=local_day(ws, held.due_at),
        keys=selected_keys(selection.chosen),
    )
    if number is None:
        return "taken over by another process"
    return number, selection.chosen


def _steps(
    ws: Workspace,
    store: Store,
    series: Recurring,
    held: Occurrence,
    tick: Tick,
    report: RecurringReport,
    label: str,
) -> str:
    """Move the held occurrence forward as far as the clock allows -> its note."""
    worker, state, number = tick.worker, held.state, held.number
    folder = occurrence_folder(ws, series, held.due_at)
    articles = None
    if state == PENDING:
        numbered = _select_and_number(ws, store, series, held, tick, report, label)
        if isinstance(numbered, str):
            return numbered
        (number, articles), state = numbered, COMPOSING
    if state == COMPOSING:
        assert number is not None
        if articles is None and (record := recorded_selection(store, held.id)) is not None:
            articles = articles_of(record)
        compose_occurrence(ws, series, held.due_at, number, articles)
        note = f"composed #{number} into {key_of(ws, folder)}"
        if series.review_to:
            note += "; " + review_copy(ws, series, folder)
        advance(store, held.id, worker, state=COMPOSED, note=note)
        report.note(f"{label}: {note}")
        state = COMPOSED
    if state == COMPOSED:
        if tick.now < held.due_at:
            return get_occurrence(store, held.id).note
        if series.approval == "required":
            note = f"#{number} waits for `newsletter approve {key_of(ws, folder)}`"
            report.note(f"{label}: {note}")
            return note
        state = APPROVED
    if state in (APPROVED, SENDING):
        advance(store, held.id, worker, state=SENDING)
        summary = send_occurrence(ws, series, folder, tick.stop)
        note = f"sent #{number}: {summary}"
        advance(store, held.id, worker, state=SENT, note=note)
        report.note(f"{label}: {note}")
        return note
    return held.note
