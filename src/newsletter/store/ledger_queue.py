"""Filling the delivery ledger and putting rows back in its queue.

``enqueue`` gives every sendable member of a list a queued row; the other functions
move rows between statuses at the start of a run (in-flight rows of a crashed run,
``--retry-failed`` / ``--retry-unknown``, deferrals past their lifetime). Each takes an
open ``Connection`` inside the caller's write transaction, or a ``Store`` when it runs
its own transactions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    Text,
    and_,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)

from newsletter.store.campaigns import lock_campaign, mark_enqueued
from newsletter.store.deliveries import DEFERRED, FAILED, QUEUED, deliveries
from newsletter.store.schema import ACTIVE, UtcDateTime, memberships, subscribers
from newsletter.store.subscribers import Store

ENQUEUE_BATCH = 5000
_ENQUEUED_COLUMNS = [
    "campaign_id",
    "subscriber_id",
    "email",
    "status",
    "attempts",
    "updated_at",
    "enhanced",
    "reply",
]


def _sendable_members(list_id: int) -> Any:
    return and_(
        memberships.c.list_id == list_id,
        memberships.c.status == ACTIVE,
        subscribers.c.status == ACTIVE,
        subscribers.c.email.is_not(None),
    )


def count_sendable(conn: Connection, list_id: int) -> int:
    """How many members of ``list_id`` may receive a campaign now (before hash checks)."""
    query = (
        select(func.count())
        .select_from(memberships)
        .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
        .where(_sendable_members(list_id))
    )
    return int(conn.scalar(query) or 0)


def enqueue(store: Store, campaign_id: int, list_id: int, now: datetime) -> int:
    """Give every sendable member of ``list_id`` a queued row -> how many rows were added.

    Runs as ``INSERT ... SELECT ... WHERE NOT EXISTS`` in batches of ``ENQUEUE_BATCH``
    members, each its own short write transaction (the web process can record an
    unsubscribe in between), and nothing is loaded into memory. Idempotent: a rerun
    after a crash halfway adds only the missing rows, and senders starting together
    share the work (each batch holds the campaign's lock). Marks the campaign enqueued.
    """
    added = 0
    last = 0
    while True:
        with store.write() as conn:
            if lock_campaign(conn, campaign_id):
                return added  # another sender of the campaign queued the rest
            upper = _batch_end(conn, list_id, last)
            added += _enqueue_batch(conn, campaign_id, list_id, last, upper, now)
            if upper is None:
                mark_enqueued(conn, campaign_id, now)
                return added
        last = upper


def _batch_end(conn: Connection, list_id: int, last: int) -> int | None:
    """The subscriber id that ends the batch after ``last``, or None for the last batch."""
    member = memberships.c.subscriber_id
    return conn.scalar(
        select(member)
        .where(memberships.c.list_id == list_id, memberships.c.status == ACTIVE)
        .where(member > last)
        .order_by(member)
        .offset(ENQUEUE_BATCH - 1)
        .limit(1)
    )


def _enqueue_batch(
    conn: Connection, campaign_id: int, list_id: int, last: int, upper: int | None, now: datetime
) -> int:
    """Queued rows for the sendable members with ids in (``last``, ``upper``] who have
    none yet -> how many were added."""
    member = memberships.c.subscriber_id
    already = exists().where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.subscriber_id == member
    )
    source = (
        select(
            literal(campaign_id, Integer),
            member,
            subscribers.c.email,
            literal(QUEUED, String),
            literal(0, Integer),
            literal(now, UtcDateTime()),
            literal("", String),
            literal("", Text),
        )
        .select_from(memberships)
        .join(subscribers, subscribers.c.id == member)
        .where(_sendable_members(list_id), member > last, ~already)
    )
    if upper is not None:
        source = source.where(member <= upper)
    result = conn.execute(insert(deliveries).from_select(_ENQUEUED_COLUMNS, source))
    return max(result.rowcount or 0, 0)


def requeue(conn: Connection, campaign_id: int, statuses: Iterable[str], now: datetime) -> int:
    """Rows of ``campaign_id`` in ``statuses`` back to queued with a fresh retry lifetime
    -> how many (``--retry-failed``: failed; ``--retry-unknown``: unknown, "no reply
    after the data", whose resend reuses the Message-ID so a receiver that did take the
    first copy can drop the second)."""
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status.in_(list(statuses)))
        .values(status=QUEUED, first_attempt_at=None, next_attempt_at=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def expire_deferred(
    conn: Connection, campaign_id: int, first_before: datetime, now: datetime
) -> int:
    """Deferred rows first tried before ``first_before`` -> failed for good."""
    result = conn.execute(
        update(deliveries)
        .where(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.status == DEFERRED,
            deliveries.c.first_attempt_at < first_before,
        )
        .values(
            status=FAILED,
            next_attempt_at=None,
            updated_at=now,
            reply="gave up: still deferred at the end of send.retry_lifetime_hours; "
            + deliveries.c.reply,
        )
    )
    return int(result.rowcount or 0)
