"""What an SMTP outcome means for the ledger row it answers.

``ACCEPTED`` -> sent. ``PERMANENT`` (5xx) -> failed with code and reply, never retried;
an enhanced code meaning "no such mailbox" (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10, 5.2.1)
also suppresses the subscriber as bounced. A bare 5xx without such a code (a policy
or spam block) does not: that would punish the reader for the sender's reputation.
``UNKNOWN`` (the final "." went out, no reply came) -> unknown: maybe delivered, so
never resent automatically (a resend could duplicate) and never counted as failed.
``TRANSIENT``: a 421 or a dropped connection is about the connection, not the
recipient (``is_connection_trouble``: the send loop reconnects and tries again before
recording it). Any other 4xx (greylisting, a full mailbox) defers the row. A deferred
row gets ``next_attempt_at = now + min(retry_cap_seconds, retry_floor_seconds * 2 **
(attempts - 1))`` and is retried by a later run once due; past
``retry_lifetime_hours`` since its first attempt it fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from newsletter.config import Send
from newsletter.smtp.outcome import Outcome, Status
from newsletter.store.deliveries import DEFERRED, FAILED, SENT, UNKNOWN, Claimed, Result

HARD_BOUNCE_CODES = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"})


def is_connection_trouble(outcome: Outcome) -> bool:
    """A 421 or a lost connection: the server wants us to come back, not this recipient."""
    return outcome.status is Status.TRANSIENT and (outcome.code is None or outcome.code == 421)


def is_hard_bounce(outcome: Outcome) -> bool:
    """A 5xx whose enhanced status says the mailbox does not exist or is disabled."""
    return outcome.status is Status.PERMANENT and outcome.enhanced in HARD_BOUNCE_CODES


def backoff(attempts: int, send: Send) -> timedelta:
    """Wait before the next try after ``attempts`` transient failures."""
    seconds = send.retry_floor_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(send.retry_cap_seconds, seconds))


def result_for(row: Claimed, outcome: Outcome, now: datetime, send: Send) -> Result:
    """The ledger entry for ``row`` after ``outcome`` at ``now``."""
    status, reply, next_at = FAILED, outcome.reply, None
    if outcome.status is Status.ACCEPTED:
        status = SENT
    elif outcome.status is Status.UNKNOWN:
        status = UNKNOWN
    elif outcome.status is Status.TRANSIENT:
        first = row.first_attempt_at or now
        if now - first >= timedelta(hours=send.retry_lifetime_hours):
            reply = f"gave up after {send.retry_lifetime_hours:g} h: {outcome.reply}"
        else:
            status, next_at = DEFERRED, now + backoff(row.attempts, send)
    return Result(
        row.id,
        status,
        code=outcome.code,
        enhanced=outcome.enhanced,
        reply=reply,
        next_attempt_at=next_at,
        subscriber_id=row.subscriber_id,
        email=row.email,
        bounce=is_hard_bounce(outcome),
    )
