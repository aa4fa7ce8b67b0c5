"""The values a run of the ledger loop is tuned by and counts into."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from newsletter.errors import NewsletterError
from newsletter.store import utcnow


@dataclass(frozen=True)
class SendTuning:
    """Timing knobs of a run; the defaults suit real servers, tests shrink them.

    ``reconnect_attempts`` retries of one message on a fresh connection after a 421 or
    a drop (``reconnect_backoff`` seconds before the first, doubling up to
    ``reconnect_backoff_cap``) before it is deferred; ``heartbeat_seconds`` how often a
    run tells other processes it is alive, ``stale_after_seconds`` when a silent run
    counts as dead; ``clock`` the time the ledger records, ``monotonic`` the seconds
    the rate limit counts.
    """

    reconnect_attempts: int = 6
    reconnect_backoff: float = 0.1
    reconnect_backoff_cap: float = 5.0
    heartbeat_seconds: float = 5.0
    stale_after_seconds: float = 60.0
    clock: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic


@dataclass
class RunCounts:
    """Outcomes recorded so far in one run."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    unknown: int = 0
    bounced: int = 0
    connections_opened: int = 0
    # the database work of the run: write transactions, and seconds spent in them
    ledger_steps: int = 0
    ledger_seconds: float = 0.0
    fatal: NewsletterError | None = None
    stopped: bool = False
