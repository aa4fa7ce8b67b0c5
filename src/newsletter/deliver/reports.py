"""What the send functions hand back: plans, progress, reports (plain values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

NEW, RESUME, WAITING, FINISHED = "new", "resume", "waiting", "finished"
RUNNING = "running"  # a sender left while others still send the campaign


@dataclass(frozen=True)
class SendPlan:
    """What ``send_issue`` would do now, for the confirmation prompt.

    ``state``: ``new`` (never started), ``resume`` (started, rows left to try now),
    ``waiting`` (only deferred rows left, none due yet) or ``finished``.
    ``recipients`` is how many this run would try; ``sent``/``failed``/``deferred``
    what earlier runs recorded; ``target`` where the messages go.
    """

    issue_dir: Path
    list_name: str
    subject: str
    state: str
    recipients: int
    target: str
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    next_attempt_at: datetime | None = None
    # another process is sending it now: this send would join it
    running: bool = False


@dataclass(frozen=True)
class SendProgress:
    """Counts so far in one run, reported after each group of outcomes is committed."""

    total: int
    sent: int
    failed: int
    deferred: int
    skipped: int
    unknown: int
    elapsed: float
    # of the campaign's rows due when this run started (``total``), how many every
    # sender together has done: this run's own share is ``done``
    campaign_done: int | None = None

    @property
    def done(self) -> int:
        """Rows finished in this run (any outcome)."""
        return self.sent + self.failed + self.deferred + self.skipped + self.unknown

    @property
    def rate(self) -> float:
        """Rows per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class SendReport:
    """What one send run did (counts are this run's; ``campaign_*`` the campaign's rows
    by status after it, all runs together).

    ``state`` is the campaign's state afterwards (``finished``, ``waiting`` for
    deferred rows, ``stopped`` when interrupted); ``outbox`` is set when the embedded
    local server stored the messages; ``failures`` lists (address, reply) of the first
    20 failed rows (``failures_total`` in all); ``recovered`` counts rows a crashed run
    left in flight, sent again.
    """

    issue_dir: Path
    list_name: str
    subject: str
    target: str
    campaign_id: int | None = None
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    unknown: int = 0
    campaign_sent: int = 0
    campaign_failed: int = 0
    campaign_deferred: int = 0
    campaign_unknown: int = 0
    campaign_total: int = 0
    state: str = ""
    resumed: bool = False
    recovered: int = 0
    requeued: int = 0
    interrupted: bool = False
    test: bool = False
    next_attempt_at: datetime | None = None
    outbox: Path | None = None
    connections_opened: int = 0
    ledger_steps: int = 0  # write transactions of the ledger in this run
    ledger_seconds: float = 0.0  # time the run spent in them
    elapsed: float = 0.0
    warnings: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def done(self) -> int:
        """Rows this run finished, whatever the outcome."""
        return self.sent + self.failed + self.deferred + self.skipped + self.unknown

    def counts(self) -> str:
        """``sent N, failed N, deferred N, skipped N, unknown N``."""
        return (
            f"sent {self.sent}, failed {self.failed}, deferred {self.deferred}, "
            f"skipped {self.skipped}, unknown {self.unknown}"
        )

    def summary(self) -> str:
        """One line: this run's counts, what the campaign has left, and what to do about it.

        e.g. ``sent 211, failed 0, deferred 0, skipped 0, unknown 0 (campaign: 2611 of
        3000 sent, 389 deferred, 2 unknown); deferred rows are due again from ...``
        """
        line = self.counts()
        if self.test:
            return f"test send: {line}"
        if self._campaign_differs():
            line += f" (campaign: {self.campaign_counts()})"
        if self.state == RUNNING:
            line += "; other senders are still sending this campaign"
        if self.deferred_left and self.next_attempt_at is not None:
            line += f"; deferred rows are due again from {self.next_attempt_at:%Y-%m-%d %H:%M} UTC"
        if self.campaign_unknown:
            line += (
                f"; {self.campaign_unknown} got no reply after their data (some may have "
                "arrived): send again with --retry-unknown to resend them"
            )
        return line

    def campaign_counts(self) -> str:
        """``S of T sent`` and the campaign's failed, deferred and unknown rows when any."""
        parts = [f"{self.campaign_sent} of {self.campaign_total} sent"]
        for count, status in (
            (self.campaign_failed, "failed"),
            (self.campaign_deferred, "deferred"),
            (self.campaign_unknown, "unknown"),
        ):
            if count:
                parts.append(f"{count} {status}")
        return ", ".join(parts)

    def _campaign_differs(self) -> bool:
        # a first run that tried every row says it all in its own counts
        run = (self.sent, self.failed, self.deferred, self.unknown)
        campaign = (
            self.campaign_sent,
            self.campaign_failed,
            self.campaign_deferred,
            self.campaign_unknown,
        )
        done = self.sent + self.failed + self.deferred + self.skipped + self.unknown
        return self.resumed or run != campaign or self.campaign_total != done

    @property
    def failures_total(self) -> int:
        """How many failed rows ``failures`` lists the first of: this run's for a test
        send, the campaign's (all runs) otherwise."""
        return self.failed if self.test else self.campaign_failed

    @property
    def deferred_left(self) -> bool:
        """Whether deferred rows wait for a later run."""
        return self.state == WAITING


@dataclass(frozen=True)
class DryRunReport:
    """What ``dry_run`` wrote: ``count`` .eml files (``bytes`` in all) into ``outdir``,
    with ``manifest.csv`` naming each file's envelope sender and recipient."""

    outdir: Path
    count: int
    bytes: int
    elapsed: float
    warnings: list[str] = field(default_factory=list)
