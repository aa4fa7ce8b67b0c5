"""Sending an issue to a list: plan it, run it through the ledger, resume it, retry it.

``send_issue`` is the one entry point for real sends (the CLI, the scheduler and
``retry_due_deferrals`` all call it). One call is one *run* of a *campaign* (the issue
folder sent to one list, see ``store.deliveries``):

1. The first run renders the issue once, checks it (HTML size, postal address,
   unsubscribe link) and stores it with the campaign; later runs send that stored
   copy, so a resumed send delivers what the first run started with, edits or not.
2. The run takes the campaign (one process at a time; a dead or silent one is taken
   over), puts back rows a crashed run left in flight, gives every list member of the
   start a queued row (streamed, in batches), and lets ``engine.LedgerRun`` send.
3. It ends ``finished`` (nobody left), ``waiting`` (deferred rows due later: run it
   again, or let ``serve`` call ``retry_due_deferrals``) or ``stopped`` (Ctrl-C, an
   error: run it again to resume). A finished campaign is never sent again;
   ``retry_failed`` puts its failed rows (only those) back in the queue.

Without ``NEWSLETTER_SMTP_URL`` the run starts the embedded local server
(``newsletter.smtp.embedded``) for its duration and the messages land in ``outbox/``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

from newsletter.compose.folder import issue_key
from newsletter.compose.issue_file import read_issue
from newsletter.errors import AlreadySentError, DeliveryError, NewsletterError, StoreError
from newsletter.mail.template import MessageTemplate
from newsletter.smtp.embedded import EmbeddedServer, outbox_dir
from newsletter.smtp.settings import SmtpSettings, smtp_settings
from newsletter.store import Store, open_store_for, utcnow
from newsletter.store.campaigns import (
    FINISHED,
    STOPPED,
    WAITING,
    Campaign,
    acquire,
    campaigns_due,
    create_campaign,
    find_campaign,
    release_campaign,
)
from newsletter.store.deliveries import (
    DEFERRED,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    UNKNOWN,
    counts,
    failures,
    next_attempt,
    pending_now,
)
from newsletter.store.lease import describe_holder, holder_name
from newsletter.store.ledger_queue import (
    count_sendable,
    enqueue,
    expire_deferred,
    recover_in_flight,
    requeue,
)
from newsletter.workspace import Workspace

from .content import check_sender, issue_label, make_template, render_for_send
from .engine import LedgerRun, RunCounts, SendTuning
from .reports import NEW, RESUME, SendPlan, SendProgress, SendReport

log = logging.getLogger(__name__)


# --- helpers --------------------------------------------------------------------------------


def resolve_list_name(ws: Workspace, list_name: str | None) -> str:
    """The list to send to: ``list_name``, or ``send.list`` when none was given.

    An empty name is an error, not the default: ``--list "$LIST"`` with LIST unset
    must not quietly send to another list.
    """
    if list_name is None:
        return ws.config.send.list.strip()
    if not list_name.strip():
        raise NewsletterError(
            "the list name is empty",
            hint=f"give --list a name, or leave it out to send to {ws.config.send.list!r}",
        )
    return list_name.strip()


def _list_id(store: Store, list_name: str) -> int:
    list_id = store.list_id(list_name)
    if list_id is None:
        known = ", ".join(repr(name) for name in store.list_names()) or "none yet"
        raise StoreError(
            f"no list named {list_name!r} (lists: {known})",
            hint="pass --list with one of them, or import subscribers into a new list "
            "with newsletter subscribers import FILE --list NAME",
        )
    return list_id


def refuse_empty_list(store: Store, list_id: int, list_name: str) -> None:
    """Raise NewsletterError when ``list_name`` has nobody a send would reach (a send
    and a dry run refuse alike)."""
    with store.read() as conn:
        if count_sendable(conn, list_id):
            return
    raise NewsletterError(
        f"list {list_name!r} has nobody to send to (no active, confirmed member)",
        hint="import subscribers first: newsletter subscribers import FILE",
    )


def _never_sent(issue_dir: Path, list_name: str) -> NewsletterError:
    return NewsletterError(
        f"{issue_dir} was never sent to list {list_name!r}: there is nothing to retry",
        hint="leave out --retry-failed / --retry-unknown to send it",
    )


def smtp_target(ws: Workspace, smtp: SmtpSettings | None) -> str:
    """Where messages go, for people: ``smtp://host:port`` or the embedded server's folder."""
    if smtp is not None:
        return smtp.display
    return f"the embedded local SMTP server (messages stored in {outbox_dir(ws)})"


@contextlib.contextmanager
def open_transport(
    ws: Workspace, smtp: SmtpSettings | None
) -> Iterator[tuple[SmtpSettings, Path | None]]:
    """``smtp`` as it is, or the embedded server started for the block -> (settings, outbox)."""
    if smtp is not None:
        yield smtp, None
        return
    send = ws.config.send
    folder = outbox_dir(ws)
    with EmbeddedServer(folder) as server:
        yield (
            server.settings(
                messages_per_connection=send.messages_per_connection, timeout=send.timeout_seconds
            ),
            folder,
        )


@contextlib.contextmanager
def _stop_on_sigint(stop: threading.Event, enabled: bool) -> Iterator[None]:
    """While the block runs, a first Ctrl-C (or SIGTERM, what service managers and
    ``kill`` send) sets ``stop``: finish what is in flight, then end; a second one
    interrupts at once. Only in the main thread, only if ``enabled``."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        again = "Ctrl-C again" if signum == signal.SIGINT else "the same signal again"
        log.warning("stopping after the messages in flight (%s to abort at once)", again)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _already_sent(issue_dir: Path, campaign: Campaign, found: dict[str, int]) -> AlreadySentError:
    when = f" on {campaign.finished_at:%Y-%m-%d %H:%M} UTC" if campaign.finished_at else ""
    hints = []
    if found[FAILED]:
        hints.append("pass --retry-failed to try the failed recipients again")
    if found[UNKNOWN]:
        hints.append(
            "pass --retry-unknown to resend the messages that got no reply after their "
            "data (some may have arrived: receivers see the same Message-ID twice)"
        )
    unknown = f", {found[UNKNOWN]} unknown" if found[UNKNOWN] else ""
    return AlreadySentError(
        f"{issue_dir} was already sent to list {campaign.list_name!r}{when} "
        f"({found[SENT]} sent, {found[FAILED]} failed{unknown})",
        hint="; ".join(hints) or "compose a new issue to send again",
    )


def _final_state(run: RunCounts, found: dict[str, int]) -> str:
    if run.fatal is not None or run.stopped or found[QUEUED] or found[SENDING]:
        return STOPPED
    return WAITING if found[DEFERRED] else FINISHED


# --- planning -------------------------------------------------------------------------------


def plan_send(
    ws: Workspace,
    issue_dir: Path,
    list_name: str | None = None,
    *,
    retry_failed: bool = False,
    retry_unknown: bool = False,
    smtp_url: str | None = None,
    now: datetime | None = None,
) -> SendPlan:
    """What ``send_issue`` would do now -> SendPlan (for the confirmation prompt).

    Reads the issue (or the started campaign), counts recipients; changes nothing.
    ``now`` (default: the current time) decides which deferred rows are due.
    Raises RenderError for an unreadable issue, StoreError for an unknown list,
    ConfigError for a bad SMTP URL or a commercial sender without postal address.
    """
    list_name = resolve_list_name(ws, list_name)
    check_sender(ws)
    target = smtp_target(ws, smtp_settings(ws, smtp_url))
    key = issue_key(ws, issue_dir)
    with open_store_for(ws) as store:
        list_id = _list_id(store, list_name)
        with store.read() as conn:
            campaign = find_campaign(conn, key, list_id)
            if campaign is None:
                if retry_failed or retry_unknown:
                    raise _never_sent(issue_dir, list_name)
                subject = read_issue(issue_dir).subject
                return SendPlan(
                    issue_dir, list_name, subject, NEW, count_sendable(conn, list_id), target
                )
            now = now or utcnow()
            found = counts(conn, campaign.id)
            pending = pending_now(conn, campaign.id, now)
            if campaign.enqueued_at is None:
                pending += max(count_sendable(conn, list_id) - sum(found.values()), 0)
            if retry_failed:
                pending += found[FAILED]
            if retry_unknown:
                pending += found[UNKNOWN]
            due_later = next_attempt(conn, campaign.id)
    if pending:
        state = RESUME
    elif found[DEFERRED]:
        state = WAITING
    else:
        state = FINISHED
    return SendPlan(
        issue_dir,
        list_name,
        campaign.subject,
        state,
        pending,
        target,
        sent=found[SENT],
        failed=found[FAILED],
        deferred=found[DEFERRED],
        next_attempt_at=due_later,
    )


# --- sending --------------------------------------------------------------------------------


def send_issue(
    ws: Workspace,
    issue_dir: Path,
    *,
    list_name: str | None = None,
    connections: int | None = None,
    rate: float | None = None,
    retry_failed: bool = False,
    retry_unknown: bool = False,
    smtp_url: str | None = None,
    progress: Callable[[SendProgress], None] | None = None,
    stop: threading.Event | None = None,
    handle_sigint: bool = False,
    tuning: SendTuning | None = None,
) -> SendReport:
    """Send ``issue_dir`` to ``list_name`` (default ``send.list``) -> SendReport.

    ``connections`` (default ``send.connections``) SMTP connections at once, ``rate``
    messages per second at most (default ``send.rate``, 0 = no limit), ``smtp_url``
    instead of NEWSLETTER_SMTP_URL (neither: the embedded server). ``progress`` is
    called after each committed group of outcomes. Setting ``stop`` (or Ctrl-C with
    ``handle_sigint``) ends the run after the messages in flight (report.interrupted).

    ``retry_failed`` / ``retry_unknown`` put the campaign's failed / unknown ("no reply
    after the data: maybe delivered") rows back in the queue first; for an issue never
    sent to the list they are an error.

    Raises AlreadySentError for a finished campaign (unless one of those),
    DeliveryError when the server cannot be used at all (the run stops, nothing in
    flight is marked sent, a rerun resumes), NewsletterError when another process is
    sending the same campaign, RenderError/ConfigError/StoreError for bad input.
    """
    run = _Run(
        ws,
        issue_dir,
        list_name=resolve_list_name(ws, list_name),
        key="",
        retry_failed=retry_failed,
        retry_unknown=retry_unknown,
        tuning=tuning or SendTuning(),
        stop=stop or threading.Event(),
        connections=connections,
        rate=rate,
        progress=progress,
        handle_sigint=handle_sigint,
    )
    check_sender(ws)
    smtp = smtp_settings(ws, smtp_url)
    run.key = issue_key(ws, issue_dir)
    started = time.monotonic()
    with open_store_for(ws) as store:
        list_id = _list_id(store, run.list_name)
        campaign, report = run.open_campaign(store, list_id, smtp_target(ws, smtp))
        template = run.template(campaign)
        run.take(store, campaign)
        counted = RunCounts()
        state = STOPPED
        try:
            total = run.queue(store, campaign, report)
            if total:
                counted = run.send(store, campaign, template, smtp, total, report)
            found = _campaign_totals(store, campaign.id, report)
            state = _final_state(counted, found)
        finally:
            release_campaign(store, campaign.id, run.runner, state, run.tuning.clock())
    report = _final_report(report, counted, found, state, time.monotonic() - started)
    if counted.fatal is not None:
        raise _stopped_by(counted)
    log.info("%s: %s", issue_dir, report.summary())
    return report


@dataclass
class _Run:
    """One run of ``send_issue``: its options and its steps (open the campaign, take it,
    queue its rows, send them)."""

    ws: Workspace
    issue_dir: Path
    list_name: str
    key: str  # the campaign's issue path
    retry_failed: bool
    retry_unknown: bool
    tuning: SendTuning
    stop: threading.Event
    connections: int | None  # default: send.connections
    rate: float | None  # default: send.rate
    progress: Callable[[SendProgress], None] | None
    handle_sigint: bool
    runner: str = field(default_factory=holder_name)

    @property
    def retrying(self) -> bool:
        """Whether failed or unknown rows are to be put back in the queue."""
        return self.retry_failed or self.retry_unknown

    def open_campaign(self, store: Store, list_id: int, target: str) -> tuple[Campaign, SendReport]:
        """The campaign to run (created, with the issue rendered once, on the first run)
        and the report it starts. Raises AlreadySentError for a finished one."""
        key = self.key
        with store.read() as conn:
            campaign = find_campaign(conn, key, list_id)
            found = counts(conn, campaign.id) if campaign is not None else {}
        warnings: list[str] = []
        resumed = campaign is not None
        if campaign is None:
            if self.retrying:
                raise _never_sent(self.issue_dir, self.list_name)
            rendered, warnings = render_for_send(self.ws, self.issue_dir)
            refuse_empty_list(store, list_id, self.list_name)
            campaign = create_campaign(
                store,
                issue_path=key,
                list_id=list_id,
                label=issue_label(self.issue_dir),
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
                now=self.tuning.clock(),
            )
        elif campaign.state == FINISHED and not self.retrying:
            raise _already_sent(self.issue_dir, campaign, found)
        report = SendReport(
            issue_dir=self.issue_dir,
            list_name=self.list_name,
            subject=campaign.subject,
            target=target,
            campaign_id=campaign.id,
            resumed=resumed,
            warnings=warnings,
        )
        return campaign, report

    def template(self, campaign: Campaign) -> MessageTemplate:
        """The message template of ``campaign``'s stored render, built once per run."""
        return make_template(
            self.ws,
            subject=campaign.subject,
            html=campaign.html,
            text=campaign.text,
            label=campaign.label,
            list_id=campaign.list_id,
            list_name=self.list_name,
            campaign_id=campaign.id,
        )

    def take(self, store: Store, campaign: Campaign) -> None:
        """Make this process the campaign's one sender; NewsletterError if another is."""
        now = self.tuning.clock()
        stale = now - timedelta(seconds=self.tuning.stale_after_seconds)
        holder = acquire(store, campaign, self.runner, now, stale)
        if holder is not None:
            raise NewsletterError(
                f"{self.issue_dir} is being sent to list {self.list_name!r} by another "
                f"process ({describe_holder(holder)})",
                hint="let it finish; a send silent for "
                f"{self.tuning.stale_after_seconds:g} s can be taken over by running send again",
            )

    def queue(self, store: Store, campaign: Campaign, report: SendReport) -> int:
        """Put back what a crashed run left in flight (and, if asked, the failed or
        unknown rows), expire old deferrals, queue the list on the first run -> how
        many rows are due now."""
        now = self.tuning.clock()
        lifetime = timedelta(hours=self.ws.config.send.retry_lifetime_hours)
        with store.write() as conn:
            report.recovered = recover_in_flight(conn, campaign.id, now)
            retry = [FAILED] * self.retry_failed + [UNKNOWN] * self.retry_unknown
            report.requeued = requeue(conn, campaign.id, retry, now) if retry else 0
            expire_deferred(conn, campaign.id, now - lifetime, now)
        if report.recovered:
            log.warning(
                "%d messages were in flight when an earlier run stopped; sending them "
                "again (a recipient whose server had taken one gets it twice)",
                report.recovered,
            )
        if campaign.enqueued_at is None:
            added = enqueue(store, campaign.id, campaign.list_id, now)
            log.info("queued %d recipients for %s", added, campaign.issue_path)
        with store.read() as conn:
            return pending_now(conn, campaign.id, self.tuning.clock())

    def send(
        self,
        store: Store,
        campaign: Campaign,
        template: MessageTemplate,
        smtp: SmtpSettings | None,
        total: int,
        report: SendReport,
    ) -> RunCounts:
        """Run the ledger loop over ``total`` due rows of ``campaign`` through ``smtp``
        (None: the embedded server, whose folder goes in ``report``) -> its counts."""
        send = self.ws.config.send
        with (
            open_transport(self.ws, smtp) as (settings, outbox),
            _stop_on_sigint(self.stop, self.handle_sigint),
        ):
            report.outbox = outbox
            return LedgerRun(
                store=store,
                campaign_id=campaign.id,
                list_id=campaign.list_id,
                runner=self.runner,
                template=template,
                smtp=settings,
                send_config=send,
                connections=max(1, min(self.connections or send.connections, total)),
                total=total,
                rate=send.rate if self.rate is None else self.rate,
                tuning=self.tuning,
                progress=self.progress,
                stop=self.stop,
            ).run()


def _campaign_totals(store: Store, campaign_id: int, report: SendReport) -> dict[str, int]:
    """The campaign's rows per status after the run; the report gets the next
    attempt's time and the failures."""
    with store.read() as conn:
        report.next_attempt_at = next_attempt(conn, campaign_id)
        report.failures = failures(conn, campaign_id)
        return counts(conn, campaign_id)


def _final_report(
    report: SendReport, run: RunCounts, found: dict[str, int], state: str, elapsed: float
) -> SendReport:
    """``report`` with the run's counts and the campaign's totals."""
    return replace(
        report,
        sent=run.sent,
        failed=run.failed,
        deferred=run.deferred,
        skipped=run.skipped,
        unknown=run.unknown,
        campaign_sent=found[SENT],
        campaign_failed=found[FAILED],
        campaign_deferred=found[DEFERRED],
        campaign_unknown=found[UNKNOWN],
        campaign_total=sum(found.values()),
        state=state,
        interrupted=run.stopped,
        connections_opened=run.connections_opened,
        elapsed=elapsed,
    )


def _stopped_by(run: RunCounts) -> DeliveryError:
    """The run-stopping error, saying how far the run got and how to resume."""
    error = run.fatal
    assert error is not None
    unknown = (
        f" ({run.unknown} got no reply after their data: maybe delivered, "
        "never resent by itself; see --retry-unknown)"
        if run.unknown
        else ""
    )
    return type(error)(
        f"{error.message}; stopped after sending {run.sent} in this run{unknown}",
        hint=(error.hint + "; " if error.hint else "")
        + "run the same send again to resume where it stopped",
    )


# --- for the scheduler ------------------------------------------------------------------------


def retry_due_deferrals(
    ws: Workspace, *, smtp_url: str | None = None, tuning: SendTuning | None = None
) -> list[SendReport]:
    """Run every campaign whose deferred rows are due again -> one report per campaign.

    For ``serve``'s scheduler tick (or cron). A campaign that cannot run now (its
    server down, another process on it) is logged and left for the next tick.
    """
    tuning = tuning or SendTuning()
    with open_store_for(ws) as store, store.read() as conn:
        due = campaigns_due(conn, tuning.clock())
    reports = []
    for campaign in due:
        folder = Path(campaign.issue_path)
        folder = folder if folder.is_absolute() else ws.root / folder
        try:
            reports.append(
                send_issue(
                    ws, folder, list_name=campaign.list_name, smtp_url=smtp_url, tuning=tuning
                )
            )
        except NewsletterError as exc:
            log.warning("retrying deferred deliveries of %s failed: %s", folder, exc)
    return reports
