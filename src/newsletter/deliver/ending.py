"""How a run of a campaign ends: its state, its report, and the errors that stop it.

``final_state`` decides the campaign's state from the run and its rows, ``final_report``
fills the run's SendReport, ``stopped_by`` and ``already_sent`` word the errors, and
``database_kept`` turns a database lost mid-run into one StoreError.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from sqlalchemy.exc import InterfaceError, OperationalError

from newsletter.errors import AlreadySentError, NewsletterError, StoreError
from newsletter.store import Store
from newsletter.store.campaigns import FINISHED, STOPPED, WAITING, Campaign
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
)

from .reports import SendReport
from .run_state import RunCounts


def already_sent(issue_dir: Path, campaign: Campaign, found: dict[str, int]) -> AlreadySentError:
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


@contextmanager
def database_kept(run: RunCounts | None = None) -> Iterator[None]:
    """Turn a lost database into a StoreError (the run's own, if it lost it first)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        if run is not None and isinstance(run.fatal, StoreError):
            raise run.fatal from None
        reason = " ".join(str(exc.orig).split())[:200]
        raise StoreError(
            f"lost the database while sending ({reason})",
            hint="check that the database is reachable, then run the same send again to "
            "resume; messages in flight go back to the queue when this sender's lease ends",
        ) from None


def final_state(run: RunCounts, found: dict[str, int]) -> str:
    if run.fatal is not None or run.stopped or found[QUEUED] or found[SENDING]:
        return STOPPED
    return WAITING if found[DEFERRED] else FINISHED


def campaign_totals(store: Store, campaign_id: int, report: SendReport) -> dict[str, int]:
    """The campaign's rows per status after the run; the report gets the next
    attempt's time and the failures."""
    with store.read() as conn:
        report.next_attempt_at = next_attempt(conn, campaign_id)
        report.failures = failures(conn, campaign_id)
        return counts(conn, campaign_id)


def final_report(
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
        ledger_steps=run.ledger_steps,
        ledger_seconds=run.ledger_seconds,
        elapsed=elapsed,
    )


def stopped_by(run: RunCounts) -> NewsletterError:
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
