"""Unsubscribe requests received by mail: one row per request mail processed.

``newsletter bounces`` reads the same Maildir or mbox again and again (it moves
nothing), and someone who asked to leave by mail may sign up again later: the next run
must not unsubscribe them a second time on the strength of the old mail. So each
request mail is remembered by ``request_key`` (a hash of its Message-ID, else of its
bytes) with what it came to, whether or not it named anyone we know.

The rows hold no address and no token, only the key, the outcome and the time, so
erasing a subscriber has nothing to delete here; the unsubscribe itself is in the
consent trail.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

from newsletter.store.records import utcnow
from newsletter.store.schema import UtcDateTime, metadata
from newsletter.store.subscribers import Store

unsubscribe_requests = Table(
    "unsubscribe_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("request_key", String(64), nullable=False, unique=True),
    # what the request came to: token | sender | unchanged | unmatched
    Column("outcome", String(16), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)


def request_seen(store: Store, request_key: str) -> bool:
    """True when a request mail with ``request_key`` (64 hex characters) was processed."""
    with store.read() as conn:
        found = conn.scalar(
            select(unsubscribe_requests.c.id).where(
                unsubscribe_requests.c.request_key == request_key
            )
        )
    return found is not None


def record_request(
    store: Store, request_key: str, outcome: str, *, now: datetime | None = None
) -> bool:
    """Remember that the request mail ``request_key`` came to ``outcome``.

    -> False when it was already recorded (another run processed it at the same time).
    """
    try:
        with store.write() as conn:
            if conn.scalar(
                select(unsubscribe_requests.c.id).where(
                    unsubscribe_requests.c.request_key == request_key
                )
            ):
                return False
            conn.execute(
                insert(unsubscribe_requests).values(
                    request_key=request_key, outcome=outcome[:16], recorded_at=now or utcnow()
                )
            )
    except IntegrityError:
        # PostgreSQL: another process inserted the same key between our check and insert
        return False
    return True
