"""Sending an issue to a list: plan it, run it through the ledger, resume it, retry it.

``send_issue`` is the one entry point for real sends (the CLI, the scheduler and
``retry_due_deferrals`` all call it). One call is one *run* of a *campaign* (the issue
folder sent to one list, see ``store.deliveries``):

1. The first run renders the issue once, checks it (HTML size, postal address,
   unsubscribe link) and stores it with the campaign; later runs send that stored
   copy, so a resumed send delivers what the first run started with, edits or not.
2. The run joins the campaign as one of its senders (``store.senders``: several
   processes, on one machine or many, may send one campaign together; each claims
   its own rows), puts back rows that dead senders left in flight, gives every list
   member of the start a queued row (streamed, in batches), and lets
   ``engine.LedgerRun`` send.
3. The last sender to leave puts the campaign in its state: ``finished`` (nobody
   left), ``waiting`` (deferred rows due later: run it again, or let ``serve`` call
   ``retry_due_deferrals``) or ``stopped`` (Ctrl-C, an error: run it again to
   resume). A sender leaving while others still send reports ``running``. A finished
   campaign is never sent again; ``retry_failed`` puts its failed rows (only those)
   back in the queue.

Where the messages go (the configured server or the embedded one) is ``transport``'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from newsletter.compose.folder import issue_key
from newsletter.errors import NewsletterError
from newsletter.mail.template import MessageTemplate
from newsletter.smtp.settings import SmtpSettings, smtp_settings
from newsletter.store import Store, open_store_for
from newsletter.store.campaigns import (
    FINISHED,
    Campaign,
    campaigns_due,
    create_campaign,
    find_campaign,
    lock_campaign,
)
from newsletter.store.deliveries import (
    FAILED,
    UNKNOWN,
    counts,
    pending_now,
)
from newsletter.store.lease import RUNNING, holder_name
from newsletter.store.ledger import Sender
from newsletter.store.ledger_queue import enqueue, expire_deferred, requeue
from newsletter.store.senders import Joined, join_campaign, leave_campaign, recover_orphans
from newsletter.workspace import Workspace

from .content import check_placeholders, check_sender, issue_label, make_template, render_for_send
from .ending import (
    already_sent,
    campaign_totals,
    database_kept,
    final_report,
    final_state,
    stopped_by,
)
from .engine import LedgerRun
from .plan import list_id_of, nothing_to_retry, refuse_empty_list, resolve_list_name
from .reports import SendProgress, SendReport
from .run_state import RunCounts, SendTuning
from .transport import open_transport, smtp_target, stop_on_sigint

log = logging.getLogger(__name__)


def send_issue(
    ws: Workspace,
    issue_dir: Path,
    *,
    list_name: str | None = None,
    connections: int | None = None,
    rate: float | None = None,
    campaign_rate: float | None = None,
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
    messages per second at most (default ``send.rate``, 0 = no limit): both for this
    sender alone. ``campaign_rate`` (default ``send.campaign_rate``) limits the whole
    campaign, shared among the senders running it. ``smtp_url`` instead of
    NEWSLETTER_SMTP_URL (neither: the embedded server). A send started while another
    process sends the same campaign joins it. ``progress`` is
    called after each committed group of outcomes. Setting ``stop`` (or Ctrl-C with
    ``handle_sigint``) ends the run after the messages in flight (report.interrupted).

    ``retry_failed`` / ``retry_unknown`` put the campaign's failed / unknown ("no reply
    after the data: maybe delivered") rows back in the queue first; for an issue never
    sent to the list they are an error.

    Raises AlreadySentError for a finished campaign (unless one of those),
    DeliveryError when the server cannot be used at all (the run stops, nothing in
    flight is marked sent, a rerun resumes), StoreError when the database is lost
    mid-run, RenderError/ConfigError/StoreError for bad input.
    """
    run = _Run(
        ws,
        issue_dir,
        list_name=resolve_list_name(ws, list_name),
        retry_failed=retry_failed,
        retry_unknown=retry_unknown,
        tuning=tuning or SendTuning(),
        stop=stop or threading.Event(),
        connections=connections,
        rate=rate,
        campaign_rate=campaign_rate,
        progress=progress,
        handle_sigint=handle_sigint,
    )
    return run.execute(smtp_url)


@dataclass(frozen=True)
class _Run:
    """One run of ``send_issue``: its options and its steps (open the campaign, take it,
    queue its rows, send them)."""

    ws: Workspace
    issue_dir: Path
    list_name: str
    retry_failed: bool
    retry_unknown: bool
    tuning: SendTuning
    stop: threading.Event
    connections: int | None  # default: send.connections
    rate: float | None  # default: send.rate
    campaign_rate: float | None  # default: send.campaign_rate
    progress: Callable[[SendProgress], None] | None
    handle_sigint: bool
    runner: str = field(default_factory=holder_name)

    @property
    def retrying(self) -> bool:
        """Whether failed or unknown rows are to be put back in the queue."""
        return self.retry_failed or self.retry_unknown

    def execute(self, smtp_url: str | None) -> SendReport:
        """Open the campaign, hold it while its due rows go out -> the run's report.

        ``smtp_url`` overrides NEWSLETTER_SMTP_URL. A run-stopping DeliveryError is
        raised after the campaign is released, saying how to resume.
        """
        check_sender(self.ws)
        smtp = smtp_settings(self.ws, smtp_url)
        placeholders = check_placeholders(self.ws, smtp)
        key = issue_key(self.ws, self.issue_dir)
        started = time.monotonic()
        with open_store_for(self.ws) as store:
            list_id = list_id_of(store, self.list_name)
            campaign, report = self.open_campaign(store, list_id, key, smtp_target(self.ws, smtp))
            report.warnings[:0] = [w for w in placeholders if w not in report.warnings]
            with database_kept():
                counted, found, state = self.hold(store, campaign, smtp, report)
        report = final_report(report, counted, found, state, time.monotonic() - started)
        if counted.fatal is not None:
            raise stopped_by(counted)
        log.info("%s: %s", self.issue_dir, report.summary())
        if report.done:
            log.info(
                "database work: %d transactions, %.2f ms per message",
                report.ledger_steps,
                1000 * report.ledger_seconds / report.done,
            )
        return report

    def open_campaign(
        self, store: Store, list_id: int, key: str, target: str
    ) -> tuple[Campaign, SendReport]:
        """The campaign of issue path ``key`` to run (created, with the issue rendered
        once, on the first run) and the report it starts. Raises AlreadySentError for a
        finished one."""
        with store.read() as conn:
            campaign = find_campaign(conn, key, list_id)
            found = counts(conn, campaign.id) if campaign is not None else {}
        warnings: list[str] = []
        resumed = campaign is not None
        if campaign is None:
            if self.retrying:
                raise nothing_to_retry(self.issue_dir, self.list_name)
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
            raise already_sent(self.issue_dir, campaign, found)
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

    def hold(
        self, store: Store, campaign: Campaign, smtp: SmtpSettings | None, report: SendReport
    ) -> tuple[RunCounts, dict[str, int], str]:
        """Join ``campaign``'s senders, queue and send its due rows, leave it -> (this
        run's counts, the campaign's rows per status, its state afterwards)."""
        template = self.template(campaign)
        joined = self.join(store, campaign)
        counted = RunCounts()
        try:
            total = self.queue(store, campaign, report)
            if total:
                counted = self.send(store, campaign, joined, template, smtp, total, report)
        finally:
            state = self.leave(store, campaign, joined, counted)
        return counted, campaign_totals(store, campaign.id, report), state

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

    def stale_before(self) -> tuple[datetime, datetime]:
        """(now, the time before which a silent sender counts as dead)."""
        now = self.tuning.clock()
        return now, now - timedelta(seconds=self.tuning.stale_after_seconds)

    def join(self, store: Store, campaign: Campaign) -> Joined:
        """Make this process one of the campaign's senders -> its place."""
        now, stale = self.stale_before()
        with database_kept():
            joined = join_campaign(store, campaign.id, self.runner, now, stale)
        if joined.others:
            log.info(
                "joining %d other sender(s) of %s to list %r",
                joined.others,
                self.issue_dir,
                self.list_name,
            )
        return joined

    def leave(self, store: Store, campaign: Campaign, joined: Joined, run: RunCounts) -> str:
        """End this sender's part: what it holds goes back to the queue -> the
        campaign's state (``running`` while other senders carry on)."""
        now, stale = self.stale_before()
        with database_kept(run):
            state = leave_campaign(
                store,
                campaign.id,
                joined.sender_id,
                self.runner,
                now,
                stale,
                lambda found: final_state(run, found),
            )
        return RUNNING if state is None else state

    def queue(self, store: Store, campaign: Campaign, report: SendReport) -> int:
        """Put back what a crashed run left in flight (and, if asked, the failed or
        unknown rows), expire old deferrals, queue the list on the first run -> how
        many rows are due now."""
        now, stale = self.stale_before()
        lifetime = timedelta(hours=self.ws.config.send.retry_lifetime_hours)
        with store.write() as conn:
            lock_campaign(conn, campaign.id)  # a sender joining now is not taken for dead
            report.recovered = recover_orphans(conn, campaign.id, stale, now)
            retry = [FAILED] * self.retry_failed + [UNKNOWN] * self.retry_unknown
            report.requeued = requeue(conn, campaign.id, retry, now) if retry else 0
            expire_deferred(conn, campaign.id, now - lifetime, now)
        if report.recovered:
            log.warning(
                "%d messages were in flight when an earlier sender stopped; sending "
                "them again (a recipient whose server had taken one gets it twice)",
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
        joined: Joined,
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
            stop_on_sigint(self.stop, self.handle_sigint),
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
                sender=Sender(joined.sender_id, self.runner),
                campaign_rate=(
                    send.campaign_rate if self.campaign_rate is None else self.campaign_rate
                ),
                senders=joined.others + 1,
            ).run()


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
