"""Running what is due: ``run_due`` (one scheduler tick) and the send runner it calls."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from newsletter.errors import NewsletterError
from newsletter.schedule.scheduled import issue_folder
from newsletter.store import Store, open_store_for, utcnow
from newsletter.store.lease import RUNNING, Heartbeat, holder_name
from newsletter.store.schedules import (
    DONE,
    FAILED,
    ScheduledSend,
    beat,
    claim_schedule,
    due_schedules,
    finish_schedule,
    mark_missed,
    release_schedule,
)
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

__all__ = [
    "RunReport",
    "SendInterrupted",
    "SendRunner",
    "deliver_runner",
    "forget_expired_requests",
    "run_due",
]

# A send is "stale" (its process died) after this long without a heartbeat.
STALE_AFTER = timedelta(minutes=5)
HEARTBEAT_SECONDS = 30.0

# runner(workspace, scheduled send) -> a one-line summary of what was sent
SendRunner = Callable[[Workspace, ScheduledSend], str]


# Not a NewsletterError: it is no failure to report but a signal to hand the send back.
class SendInterrupted(Exception):
    """A runner stopped part-way on request (``serve`` shutting down): resume it later."""


@dataclass
class RunReport:
    """What one tick did: sends finished, failed, marked missed (ids and one-line notes)."""

    done: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    missed: list[tuple[int, str]] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    forgotten: int = 0
    # recurring series: one line per step, and those that are problems (missed, failed)
    recurring: list[str] = field(default_factory=list)
    recurring_problems: list[str] = field(default_factory=list)

    @property
    def acted(self) -> bool:
        """Whether the tick did anything at all."""
        return bool(
            self.done
            or self.failed
            or self.missed
            or self.retried
            or self.forgotten
            or self.recurring
        )

    def lines(self) -> list[str]:
        """Human-readable lines, one per send touched."""
        return (
            [f"#{i} sent: {note}" for i, note in self.done]
            + [f"#{i} failed: {note}" for i, note in self.failed]
            + [f"#{i} missed: {note}" for i, note in self.missed]
            + [f"series {note}" for note in self.recurring]
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
    from newsletter.deliver import send_issue
    from newsletter.errors import AlreadySentError

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
    """Renew ``worker``'s heartbeat on schedule ``schedule_id`` -> False once it lost it."""
    return beat(store, schedule_id, worker, utcnow())


def _too_late(scheduled: ScheduledSend, now: datetime, window: timedelta) -> bool:
    """Whether ``scheduled`` is more than ``window`` past its time at ``now``."""
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
    """Run the claimed send under a heartbeat and record how it ended: done or failed
    (in the store and ``report``), or handed back to the queue when interrupted."""
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
    """One scheduler tick: mark sends past the window missed, run those due, drive the
    recurring series (``recurring.run``), retry
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
        if ws.config.recurring and not stop.is_set():
            _run_series(ws, store, worker, stale_after, heartbeat_seconds, stop, report)
        if expire and not stop.is_set():
            report.forgotten = forget_expired_requests(ws, store)
    finally:
        if own_store:
            store.close()
    if retry is not None and not stop.is_set():
        _retry_deferred(ws, retry, report)
    return report


def _run_series(
    ws: Workspace,
    store: Store,
    worker: str,
    stale_after: timedelta,
    heartbeat_seconds: float,
    stop: threading.Event,
    report: RunReport,
) -> None:
    """Drive the recurring series one tick (``recurring.run``) and add what they did."""
    from newsletter.recurring.run import run_recurring

    done = run_recurring(
        ws,
        store,
        worker=worker,
        now=utcnow(),
        stale_after=stale_after,
        heartbeat_seconds=heartbeat_seconds,
        stop=stop,
    )
    report.recurring.extend(done.lines)
    report.recurring_problems.extend(done.problems)


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
