"""The ``deliveries`` table: one row per campaign and subscriber, and what it counts.

A delivery row moves ``queued`` -> ``sending`` (committed just before its bytes go
out) -> ``sent`` | ``failed`` | ``deferred`` | ``unknown`` (committed right after the
server answered), or ``queued`` -> ``skipped`` (no longer sendable when its turn
came). ``deferred`` rows go back to ``sending`` when ``next_attempt_at`` has passed;
``failed`` and ``unknown`` rows only through ``ledger_queue.requeue`` (``send
--retry-failed`` / ``--retry-unknown``). ``sent`` rows are never sent again.

The ledger is this table and ``campaigns``: ``ledger_queue`` fills it, ``ledger``
(``LedgerSession``) claims and records rows on the sender's hot path.
Functions take an open ``Connection`` and use portable SQL only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
)

from newsletter.store.ops import among, tally
from newsletter.store.schema import UtcDateTime, metadata, sql_in, subscriber_ref

# delivery statuses
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DEFERRED = "deferred"
FAILED = "failed"
SKIPPED = "skipped"
UNKNOWN = "unknown"
DELIVERY_STATUSES = (QUEUED, SENDING, SENT, DEFERRED, FAILED, SKIPPED, UNKNOWN)


deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    subscriber_ref(nullable=False),
    # the address the message went to (NULL once the subscriber is erased)
    Column("email", String(320), nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("first_attempt_at", UtcDateTime, nullable=True),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("code", Integer, nullable=True),
    Column("enhanced", String(16), nullable=False, default=""),
    Column("reply", Text, nullable=False, default=""),
    # the campaign_senders row that claimed it (while sending) or recorded it; no foreign
    # key: a sender row is only ever marked, never deleted while its campaign lives
    Column("sender_id", Integer, nullable=True),
    CheckConstraint(sql_in("status", DELIVERY_STATUSES), name="status"),
    UniqueConstraint("campaign_id", "subscriber_id", name="uq_deliveries_campaign_id"),
    # claiming (the next queued rows in id order), counting per status
    Index("ix_deliveries_campaign_status_id", "campaign_id", "status", "id"),
    Index("ix_deliveries_subscriber_id", "subscriber_id"),
)


@dataclass(frozen=True)
class Claimed:
    """A delivery row handed to a worker: who to write to, and how often we tried."""

    id: int
    subscriber_id: int
    email: str
    name: str
    attributes: dict[str, Any]
    attempts: int
    first_attempt_at: datetime | None = None


@dataclass(frozen=True)
class Result:
    """What to record for one row after the server answered (or we gave up).

    ``status`` is one of sent, failed, deferred, unknown, or queued (handed back
    untried: its claim is undone); ``bounce`` asks to suppress the subscriber as
    hard-bounced.
    """

    id: int
    status: str
    code: int | None = None
    enhanced: str = ""
    reply: str = ""
    next_attempt_at: datetime | None = None
    subscriber_id: int = 0
    email: str = ""
    bounce: bool = False


def counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    """Rows per status for ``campaign_id`` (every status present, 0 when none)."""
    return tally(
        conn, deliveries.c.status, DELIVERY_STATUSES, deliveries.c.campaign_id == campaign_id
    )


def next_attempt(conn: Connection, campaign_id: int) -> datetime | None:
    """When the earliest deferred row of ``campaign_id`` may be tried again, or None."""
    value: datetime | None = conn.scalar(
        select(func.min(deliveries.c.next_attempt_at)).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.status == DEFERRED
        )
    )
    if value is not None and value.tzinfo is None:  # func.min loses the column type
        value = UtcDateTime().process_result_value(value, conn.dialect)
    return value


def pending_now(conn: Connection, campaign_id: int, now: datetime) -> int:
    """Rows a run started at ``now`` would try: queued, in flight, or deferred and due."""
    return int(
        conn.scalar(
            select(func.count())
            .select_from(deliveries)
            .where(
                deliveries.c.campaign_id == campaign_id,
                or_(
                    deliveries.c.status.in_((QUEUED, SENDING)),
                    and_(deliveries.c.status == DEFERRED, deliveries.c.next_attempt_at <= now),
                ),
            )
        )
        or 0
    )


def failures(conn: Connection, campaign_id: int, limit: int = 20) -> list[tuple[str, str]]:
    """Up to ``limit`` failed rows as (address, server reply), for the summary."""
    rows = conn.execute(
        select(deliveries.c.email, deliveries.c.code, deliveries.c.reply)
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == FAILED)
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    return [(email or "(erased)", f"{code or ''} {reply}".strip()) for email, code, reply in rows]


def still_in_flight(conn: Connection, subscriber_ids: Sequence[int]) -> set[int]:
    """Of ``subscriber_ids``, who still has a row ``sending`` -> ids (a plain read)."""
    if not subscriber_ids:
        return set()
    query = select(deliveries.c.subscriber_id).where(
        among(conn, deliveries.c.subscriber_id, sorted(set(subscriber_ids))),
        deliveries.c.status == SENDING,
    )
    return set(conn.scalars(query))
