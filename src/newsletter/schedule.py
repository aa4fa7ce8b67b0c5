"""Scheduled sends: ``send ISSUE --at WHEN``, ``schedule list|cancel``, due runs.

``schedule_send`` records a send for later; ``run_due`` (one tick: ``newsletter run-due``
from cron, and every few seconds inside ``newsletter serve``) starts the sends that are
due. The rules:

- A send is started by the one process whose conditional UPDATE claims it
  (``store.schedules.claim_schedule``), so two ``serve`` processes on one database never
  both start it.
- A send whose time passed while nothing was running starts at the next tick if it is
  at most ``serve.missed_window_hours`` late; later than that it is marked ``missed``,
  logged and shown by ``schedule list``, and never sent.
- A running send whose process died (no heartbeat for ``stale_after``) is taken over
  and resumed by the ledger, which never sends a second copy to anyone it already
  delivered to; past the window it is marked missed instead.

The send itself is a ``SendRunner``: by default ``newsletter.deliver``'s entry point.
Tests pass their own runner, or the real one.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import NewsletterError
from newsletter.store import Store, open_store_for, utcnow
from newsletter.store.lease import Heartbeat, holder_name
from newsletter.store.schedules import (
    DONE,
    FAILED,
    OPEN_STATES,
    RUNNING,
    ScheduledSend,
    add_schedule,
    beat,
    cancel_schedule,
    claim_schedule,
    due_schedules,
    finish_schedule,
    list_schedules,
    mark_missed,
    release_schedule,
)
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

__all__ = [
    "WHEN_FORMS",
    "RunReport",
    "ScheduleError",
    "ScheduledSend",
    "SendInterrupted",
    "SendRunner",
    "cancel_scheduled",
    "describe",
    "list_scheduled",
    "parse_when",
    "run_due",
    "schedule_send",
]

# A send is "stale" (its process died) after this long without a heartbeat.
STALE_AFTER = timedelta(minutes=5)
HEARTBEAT_SECONDS = 30.0
# A time this little in the past still counts as "now" (the user typed the current minute).
PAST_TOLERANCE = timedelta(minutes=1)

WHEN_FORMS = (
    '"YYYY-MM-DD HH:MM" (workspace time zone), "YYYY-MM-DD HH:MM Area/City" (an IANA zone '
    'or UTC), ISO 8601 with an offset "YYYY-MM-DDTHH:MM+01:00", "today HH:MM" or '
    '"tomorrow HH:MM" (or 9am, 9:30pm; a zone may follow), or from now "+45m", "+2h", "+1d"'
)
_WHEN_HINT = "accepted forms: " + WHEN_FORMS
_RELATIVE = re.compile(r"^\+\s*(\d{1,6})\s*([mhd])$", re.IGNORECASE)
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?$", re.IGNORECASE)
_DAY_WORDS = {"today": 0, "tomorrow": 1}
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_ZONE_LIKE = re.compile(r"^(?:[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+|UTC|GMT|Z)$")

# runner(workspace, scheduled send) -> a one-line summary of what was sent
SendRunner = Callable[[Workspace, ScheduledSend], str]


class ScheduleError(NewsletterError):
    """A time that cannot be read, a send in the past, a schedule that cannot change."""


class SendInterrupted(Exception):
    """A runner stopped part-way on request (``serve`` shutting down): resume it later."""


# --- reading times ---------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo("UTC" if name in ("Z", "GMT") else name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}", hint="use an IANA name such as Europe/Berlin or UTC"
        ) from None


def _localise(naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall time in ``zone`` -> aware; ScheduleError for a time the zone skips. A time
    it repeats (clocks go back) means the first of the two."""
    local = naive.replace(tzinfo=zone, fold=0)
    # a wall time the zone skips does not survive the round trip through UTC
    if local.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None) != naive:
        raise ScheduleError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks skip that hour)",
            hint="pick a time outside the daylight-saving change",
        )
    return local


def _day_and_clock(text: str, words: list[str], zone: ZoneInfo) -> datetime:
    """``today``/``tomorrow`` and a time of day (``08:00``, ``8am``) in ``zone`` -> aware."""
    clock = _CLOCK.match(" ".join(words[1:]))
    if clock is None:
        raise ScheduleError(f"{text!r}: {words[0]} needs a time of day", hint=_WHEN_HINT)
    hour, minute, half = int(clock.group(1)), int(clock.group(2) or 0), clock.group(3)
    if half is not None:
        if not 1 <= hour <= 12:
            raise ScheduleError(f"{text!r}: {hour} is not an hour of am/pm", hint=_WHEN_HINT)
        hour = hour % 12 + (12 if half.lower().startswith("p") else 0)
    if hour > 23 or minute > 59:
        raise ScheduleError(f"{text!r}: {clock.group(0)} is not a time of day", hint=_WHEN_HINT)
    day = datetime.now(zone).date() + timedelta(days=_DAY_WORDS[words[0].lower()])
    return _localise(datetime.combine(day, time(hour, minute)), zone)


def parse_when(text: str, default_tz: str | ZoneInfo) -> datetime:
    """A send time as a person writes it -> an aware datetime.

    Accepts the forms in ``WHEN_FORMS``: a date and time in ``default_tz`` or followed by
    an IANA zone, ISO 8601 with an offset (``...+01:00``, ``...Z``), ``today`` or
    ``tomorrow`` with a time of day, or ``+N`` minutes/hours/days from now. A time a zone
    skips (the hour clocks go forward) is refused; a time it repeats (clocks go back)
    means the first of the two. Raises ScheduleError listing the accepted forms.
    """
    words = text.strip().split()
    if not words:
        raise ScheduleError("no send time given", hint=_WHEN_HINT)
    relative = _RELATIVE.match(" ".join(words))
    if relative is not None:
        amount = {_UNITS[relative.group(2).lower()]: int(relative.group(1))}
        return datetime.now(ZoneInfo("UTC")) + timedelta(**amount)
    zone: ZoneInfo | None = None
    if len(words) > 1 and _ZONE_LIKE.match(words[-1]):
        zone = _zone(words.pop())
    local_zone = zone or (default_tz if isinstance(default_tz, ZoneInfo) else _zone(default_tz))
    if words[0].lower() in _DAY_WORDS:
        return _day_and_clock(text, words, local_zone)
    stamp = " ".join(words)
    if not re.search(r"\d[T ]\d", stamp):
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", stamp):
            raise ScheduleError(f"{text!r} has no time of day", hint=_WHEN_HINT)
        raise ScheduleError(f"cannot read {text!r} as a send time", hint=_WHEN_HINT)
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        raise ScheduleError(f"cannot read {text!r} as a date and time", hint=_WHEN_HINT) from None
    if parsed.tzinfo is not None:
        if zone is not None:
            raise ScheduleError(
                f"{text!r} gives both an offset and a time zone", hint="give only one"
            )
        return parsed
    return _localise(parsed, local_zone)


# --- recording, listing, cancelling ------------------------------------------------------------


def issue_folder(ws: Workspace, scheduled: ScheduledSend) -> Path:
    """Where the issue of ``scheduled`` lives (stored paths are workspace-relative)."""
    path = Path(scheduled.issue_dir)
    return path if path.is_absolute() else ws.root / path


def _check_issue(folder: Path) -> None:
    # the issue model is only needed to validate
    from newsletter.compose.issue_file import read_issue

    if not folder.is_dir():
        raise ScheduleError(
            f"{folder}: no such issue folder", hint="compose the issue first, then schedule it"
        )
    read_issue(folder)


def schedule_send(
    ws: Workspace, issue_dir: Path | str, at: str, list_name: str | None = None
) -> ScheduledSend:
    """Record that ``issue_dir`` goes to ``list_name`` (default ``send.list``) at ``at``.

    ``at`` is read by ``parse_when`` in the workspace time zone. The issue folder must
    hold a readable issue and the list must exist; a time in the past is refused.
    Returns the stored ScheduledSend (state "scheduled"); raises ScheduleError or
    StoreError naming what to fix.
    """
    zone_name = ws.config.publication.timezone
    due = parse_when(at, zone_name)
    now = utcnow()
    if due < now - PAST_TOLERANCE:
        raise ScheduleError(
            f"{at!r} is in the past (it is now {now.astimezone(due.tzinfo):%Y-%m-%d %H:%M %Z})",
            hint="give a future time, or send now without --at",
        )
    folder = Path(issue_dir)
    _check_issue(folder if folder.is_absolute() else Path.cwd() / folder)
    from newsletter.compose.folder import issue_key
    from newsletter.deliver.campaign import resolve_list_name

    list_name = resolve_list_name(ws, list_name)
    zone_label = getattr(due.tzinfo, "key", None) or due.strftime("%z") or zone_name
    with open_store_for(ws) as store:
        if store.list_id(list_name) is None:
            raise ScheduleError(
                f"no list named {list_name!r}",
                hint="import subscribers into it first, or pass --list with an existing list",
            )
        return add_schedule(
            store,
            issue_dir=issue_key(ws, folder),
            list_name=list_name,
            due_at=due,
            zone=zone_label,
        )


def list_scheduled(ws: Workspace, *, include_finished: bool = True) -> list[ScheduledSend]:
    """Every scheduled send, soonest first (only waiting and running ones if not
    ``include_finished``)."""
    with open_store_for(ws) as store:
        return list_schedules(store, states=None if include_finished else OPEN_STATES)


def cancel_scheduled(ws: Workspace, schedule_id: int) -> ScheduledSend:
    """Cancel waiting send ``schedule_id`` -> the cancelled row (StoreError if it cannot)."""
    with open_store_for(ws) as store:
        return cancel_schedule(store, schedule_id)


def _display_zone(scheduled: ScheduledSend, fallback: str) -> ZoneInfo:
    try:
        return ZoneInfo(scheduled.zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(fallback)


def describe(scheduled: ScheduledSend, fallback_zone: str = "UTC") -> str:
    """One line for ``schedule list``: id, state, local due time, issue, list, note."""
    due = scheduled.due_at.astimezone(_display_zone(scheduled, fallback_zone))
    line = (
        f"#{scheduled.id}\t{scheduled.state}\t{due:%Y-%m-%d %H:%M} {scheduled.zone}\t"
        f"{scheduled.issue_dir}\tlist {scheduled.list_name}"
    )
    return f"{line}\t{scheduled.note}" if scheduled.note else line


# --- running what is due --------------------------------------------------------------------


@dataclass
class RunReport:
    """What one tick did: sends finished, failed, marked missed (ids and one-line notes)."""

    done: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    missed: list[tuple[int, str]] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    forgotten: int = 0

    @property
    def acted(self) -> bool:
        """Whether the tick did anything at all."""
        return bool(self.done or self.failed or self.missed or self.retried or self.forgotten)

    def lines(self) -> list[str]:
        """Human-readable lines, one per send touched."""
        return (
            [f"#{i} sent: {note}" for i, note in self.done]
            + [f"#{i} failed: {note}" for i, note in self.failed]
            + [f"#{i} missed: {note}" for i, note in self.missed]
            + [f"deferred deliveries retried: {note}" for note in self.retried]
            + ([f"forgot {self.forgotten} unconfirmed sign-ups"] if self.forgotten else [])
        )


def deliver_runner(
    ws: Workspace, scheduled: ScheduledSend, stop: threading.Event | None = None
) -> str:
    """The real send: the ledger loop of ``newsletter.deliver`` -> its summary line.

    Setting ``stop`` ends the run after the messages in flight and raises
    SendInterrupted; a campaign found already finished (a run that completed before a
    crash) is reported as such, so the schedule ends as done.
    """
    from newsletter.deliver import AlreadySentError, send_issue

    try:
        report = send_issue(
            ws, issue_folder(ws, scheduled), list_name=scheduled.list_name, stop=stop
        )
    except AlreadySentError as exc:
        return f"nothing to do: {exc.message}"
    if report.interrupted:
        raise SendInterrupted(report.summary())
    return report.summary()


def retry_deferred(ws: Workspace) -> list[str]:
    """Resume campaigns whose deferred (4xx) deliveries are due again -> their summaries."""
    from newsletter.deliver import retry_due_deferrals

    return [report.summary() for report in retry_due_deferrals(ws)]


def forget_expired_requests(ws: Workspace, store: Store) -> int:
    """Remove double opt-in requests unconfirmed for ``serve.pending_expiry_hours`` -> count."""
    cutoff = utcnow() - timedelta(hours=ws.config.serve.pending_expiry_hours)
    removed = store.expire_pending(cutoff)
    if removed:
        log.info("forgot %d unconfirmed subscription requests", removed)
    return removed


def _beat(store: Store, schedule_id: int, worker: str) -> bool:
    return beat(store, schedule_id, worker, utcnow())


def _too_late(scheduled: ScheduledSend, now: datetime, window: timedelta) -> bool:
    return now - scheduled.due_at > window


def _run_one(
    ws: Workspace,
    store: Store,
    claimed: ScheduledSend,
    worker: str,
    runner: SendRunner,
    report: RunReport,
    heartbeat_seconds: float,
) -> None:
    log.info(
        "starting scheduled send #%d: %s to %s", claimed.id, claimed.issue_dir, claimed.list_name
    )
    try:
        with Heartbeat(
            functools.partial(_beat, store, claimed.id, worker),
            heartbeat_seconds,
            name=f"scheduled send #{claimed.id}",
        ):
            summary = runner(ws, claimed)
    except SendInterrupted as exc:
        note = f"interrupted ({exc}); resumes at the next start"
        release_schedule(store, claimed.id, worker, note=note, now=utcnow())
        log.warning("scheduled send #%d %s", claimed.id, note)
        return
    except NewsletterError as exc:
        note = str(exc)
        finish_schedule(store, claimed.id, worker, state=FAILED, note=note, now=utcnow())
        log.error("scheduled send #%d failed: %s", claimed.id, note)
        report.failed.append((claimed.id, note))
        return
    except Exception as exc:
        note = f"unexpected {type(exc).__name__}: {exc}"
        finish_schedule(store, claimed.id, worker, state=FAILED, note=note, now=utcnow())
        log.exception("scheduled send #%d failed", claimed.id)
        report.failed.append((claimed.id, note))
        return
    finish_schedule(store, claimed.id, worker, state=DONE, note=summary, now=utcnow())
    log.info("scheduled send #%d done: %s", claimed.id, summary)
    report.done.append((claimed.id, summary))


def run_due(
    ws: Workspace,
    *,
    runner: SendRunner | None = None,
    store: Store | None = None,
    worker: str | None = None,
    stale_after: timedelta = STALE_AFTER,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    retry: Callable[[Workspace], list[str]] | None = retry_deferred,
    stop: threading.Event | None = None,
    expire: bool = True,
) -> RunReport:
    """One scheduler tick: mark sends past the window missed, run those due, retry
    deferred deliveries whose time has come and (``expire``) forget double opt-in
    requests nobody confirmed in time -> RunReport.

    Each due send is claimed first (only the winner runs it) and run to the end before
    the next one, in this thread. ``runner`` defaults to ``deliver_runner``; ``store``
    to the workspace's (opened and closed here); ``retry`` (None: skip) resumes
    campaigns with due deferrals, which the ledger keeps to one process at a time.
    Setting ``stop`` ends the tick early: the default runner stops its send after the
    messages in flight and hands it back to the queue, to resume at the next tick.
    """
    stop = stop or threading.Event()
    if runner is None:
        runner = functools.partial(deliver_runner, stop=stop)
    worker = worker or holder_name()
    window = timedelta(hours=ws.config.serve.missed_window_hours)
    report = RunReport()
    own_store = store is None
    store = store or open_store_for(ws)
    try:
        now = utcnow()
        for scheduled in due_schedules(store, now, stale_before=now - stale_after):
            if stop.is_set():
                break
            now = utcnow()
            if _too_late(scheduled, now, window):
                _miss(ws, store, scheduled, now, report)
                continue
            claimed = claim_schedule(store, scheduled, worker, now, stale_before=now - stale_after)
            if claimed is None:
                log.debug("scheduled send #%d was claimed by another process", scheduled.id)
                continue
            _run_one(ws, store, claimed, worker, runner, report, heartbeat_seconds)
        if expire and not stop.is_set():
            report.forgotten = forget_expired_requests(ws, store)
    finally:
        if own_store:
            store.close()
    if retry is not None and not stop.is_set():
        _retry_deferred(ws, retry, report)
    return report


def _miss(
    ws: Workspace, store: Store, scheduled: ScheduledSend, now: datetime, report: RunReport
) -> None:
    """Mark ``scheduled`` missed (too late to send) and report it, unless another
    process did so first."""
    late = now - scheduled.due_at
    what = "interrupted and not resumed" if scheduled.state == RUNNING else "not sent"
    note = (
        f"{what}: nothing ran it within {ws.config.serve.missed_window_hours:g} h "
        f"of its time ({late.total_seconds() / 3600:.1f} h late)"
    )
    if mark_missed(store, scheduled, note, now):
        log.warning("scheduled send #%d missed: %s", scheduled.id, note)
        report.missed.append((scheduled.id, note))


def _retry_deferred(
    ws: Workspace, retry: Callable[[Workspace], list[str]], report: RunReport
) -> None:
    """Run ``retry`` for the campaigns with due deferrals; a failure is logged, since the
    next tick tries again."""
    try:
        report.retried.extend(retry(ws))
    except NewsletterError as exc:
        log.warning("retrying deferred deliveries failed: %s", exc)
