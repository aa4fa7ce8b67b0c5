"""Bounce and complaint reports received by mail: one row per report, and what they do.

``bounce_reports`` keeps every hard bounce, soft bounce and complaint that named one
of our subscribers, keyed by ``report_key`` (a hash of the report's Message-ID), so
the same report processed twice is recorded once and acts once. Soft bounces are
counted from these rows: ``record_bounce`` suppresses a subscriber once soft bounces
about ``soft_limit`` different messages were reported within ``soft_window``. Each row's
``original_key`` names the sent message the report is about (0005), so the delay
warnings a mail server repeats every few hours about one message count as one, and
``campaign_id`` (0010) the campaign that message belonged to, for ``newsletter history``.

Effects, in the one write transaction that records the row:

- hard bounce -> global status ``bounced``, every membership left, address on the
  suppression list, a ``bounce`` record in the consent trail (``ops.suppress_subscriber``);
- complaint -> the same with ``complained``;
- soft bounce -> only the row, until the limit is reached, then as a hard bounce.

The rows hold the diagnostic text of the report (it often repeats the address), so
erasing a subscriber deletes them (an ``ERASE_HOOKS`` entry).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from newsletter.store.deliveries import deliveries
from newsletter.store.ops import SUPPRESS_ACTION, consent_row, record_consents, suppress_subscriber
from newsletter.store.privacy import DESCRIBE_HOOKS, ERASE_HOOKS, iso
from newsletter.store.records import Consent, utcnow
from newsletter.store.schema import (
    BOUNCED,
    COMPLAINED,
    UtcDateTime,
    metadata,
    sql_in,
    subscriber_ref,
    subscribers,
)
from newsletter.store.subscribers import Store

log = logging.getLogger(__name__)

HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"
REPORT_KINDS = (HARD, SOFT, COMPLAINT)

bounce_reports = Table(
    "bounce_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("report_key", String(64), nullable=False, unique=True),
    subscriber_ref(nullable=False),
    Column("kind", String(16), nullable=False),
    # the enhanced status code of a bounce (5.1.1), the feedback type of a complaint
    Column("status", String(32), nullable=False),
    Column("reported_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("detail", JSON, nullable=True),
    # hash of the returned message's Message-ID, else report_key (0005 sets it on old rows)
    Column("original_key", String(64), nullable=True),
    # the campaign of the returned message, when the report shows it (0010; NULL before)
    Column("campaign_id", Integer, nullable=True),
    CheckConstraint(sql_in("kind", REPORT_KINDS), name="kind"),
    # counting one subscriber's recent soft bounces reads only this index
    Index("ix_bounce_reports_subscriber_kind_at", "subscriber_id", "kind", "reported_at"),
    # history counts reports per campaign and kind from this index alone
    Index("ix_bounce_reports_campaign_kind_subscriber", "campaign_id", "kind", "subscriber_id"),
)


@dataclass(frozen=True)
class BounceEvent:
    """One report about one subscriber, ready to record.

    ``report_key``: 64 hex characters identifying the report (same report, same key);
    ``kind``: hard | soft | complaint; ``status``: enhanced status code or feedback
    type; ``reported_at``: when the report says it happened (aware, not in the
    future); ``detail``: what to keep from it (Message-ID, action, diagnostic);
    ``original_key``: 64 hex characters naming the message the report is about, the
    same for every report about it ("" = unknown: the report counts on its own);
    ``campaign_id``: the campaign a signed token in the returned message names, else
    None; ``delivery_id``: the delivery row the returned message's Message-ID names,
    else None (used only when it is a row of this subscriber, to find the campaign).
    """

    report_key: str
    subscriber_id: int
    kind: str
    status: str
    reported_at: datetime
    detail: Mapping[str, Any]
    original_key: str = ""
    campaign_id: int | None = None
    delivery_id: int | None = None


@dataclass(frozen=True)
class BounceOutcome:
    """What ``record_bounce`` did.

    ``recorded``: False when the report was already recorded (or the subscriber is
    gone); ``suppressed``: True when this report suppressed the subscriber now;
    ``soft_count``: messages soft-bounced within the window, this one included (soft only).
    """

    recorded: bool
    suppressed: bool = False
    soft_count: int = 0


def record_bounce(
    store: Store,
    event: BounceEvent,
    *,
    soft_limit: int,
    soft_window: timedelta,
    now: datetime | None = None,
) -> BounceOutcome:
    """Record ``event`` and apply it (see the module docstring) -> what happened.

    One write transaction: the row, the suppression and its consent record commit
    together or not at all. A report already recorded changes nothing.
    """
    if event.kind not in REPORT_KINDS:
        raise ValueError(f"unknown bounce kind {event.kind!r}")
    moment = now or utcnow()
    try:
        with store.write() as conn:
            return _record(conn, event, soft_limit, soft_window, moment)
    except IntegrityError:
        # PostgreSQL: another process recorded the same report between our check and insert
        if _known(store, event.report_key):
            return BounceOutcome(recorded=False)
        raise


def _known(store: Store, report_key: str) -> bool:
    with store.read() as conn:
        found = conn.scalar(
            select(bounce_reports.c.id).where(bounce_reports.c.report_key == report_key)
        )
    return found is not None


def _record(
    conn: Connection, event: BounceEvent, soft_limit: int, soft_window: timedelta, now: datetime
) -> BounceOutcome:
    seen = conn.scalar(
        select(bounce_reports.c.id).where(bounce_reports.c.report_key == event.report_key)
    )
    if seen is not None:
        return BounceOutcome(recorded=False)
    email = conn.scalar(select(subscribers.c.email).where(subscribers.c.id == event.subscriber_id))
    if email is None:  # erased (or deleted) since the report was matched: keep nothing
        return BounceOutcome(recorded=False)
    conn.execute(
        insert(bounce_reports).values(
            report_key=event.report_key,
            subscriber_id=event.subscriber_id,
            kind=event.kind,
            status=event.status[:32],
            reported_at=min(event.reported_at, now),
            recorded_at=now,
            detail=dict(event.detail) or None,
            original_key=event.original_key or event.report_key,
            campaign_id=_campaign_of(conn, event),
        )
    )
    if event.kind == SOFT:
        count = soft_bounces_since(conn, event.subscriber_id, now - soft_window, now)
        if count < soft_limit:
            return BounceOutcome(recorded=True, soft_count=count)
        extra = {"soft_bounces": count, "window_days": soft_window.total_seconds() / 86400}
        suppressed = _suppress(conn, event, email, BOUNCED, now, extra)
        return BounceOutcome(recorded=True, suppressed=suppressed, soft_count=count)
    reason = COMPLAINED if event.kind == COMPLAINT else BOUNCED
    return BounceOutcome(recorded=True, suppressed=_suppress(conn, event, email, reason, now, {}))


def _campaign_of(conn: Connection, event: BounceEvent) -> int | None:
    """The campaign ``event`` is about: its signed token's, else its delivery row's.

    A Message-ID is not signed, so its delivery row counts only when it was sent to the
    subscriber the report's signed reference named.
    """
    if event.campaign_id is not None:
        return event.campaign_id
    if event.delivery_id is None:
        return None
    found = conn.scalar(
        select(deliveries.c.campaign_id).where(
            deliveries.c.id == event.delivery_id,
            deliveries.c.subscriber_id == event.subscriber_id,
        )
    )
    return None if found is None else int(found)


def _suppress(
    conn: Connection,
    event: BounceEvent,
    email: str,
    reason: str,
    now: datetime,
    extra: dict[str, Any],
) -> bool:
    """Suppress the event's subscriber for ``reason``; a consent record when it changed."""
    if not suppress_subscriber(conn, event.subscriber_id, email, reason, now):
        return False
    detail = {"report": event.report_key, "kind": event.kind, "status": event.status}
    detail.update(extra)
    if event.detail.get("message_id"):
        detail["message_id"] = event.detail["message_id"]
    consent = Consent(source="mail", detail=detail)
    row = consent_row(event.subscriber_id, None, SUPPRESS_ACTION[reason], consent, now)
    record_consents(conn, [row])
    return True


def soft_bounces_since(
    conn: Connection, subscriber_id: int, since: datetime, until: datetime
) -> int:
    """How many messages to ``subscriber_id`` soft-bounced in [``since``, ``until``].

    Distinct originals, not reports: repeated delay warnings about one message are one.
    """
    original = func.coalesce(bounce_reports.c.original_key, bounce_reports.c.report_key)
    return int(
        conn.scalar(
            select(func.count(original.distinct()))
            .select_from(bounce_reports)
            .where(
                bounce_reports.c.subscriber_id == subscriber_id,
                bounce_reports.c.kind == SOFT,
                bounce_reports.c.reported_at >= since,
                bounce_reports.c.reported_at <= until,
            )
        )
        or 0
    )


def reports_of(store: Store, subscriber_id: int) -> list[dict[str, Any]]:
    """Every recorded report about ``subscriber_id``, oldest first (kind, status, times, detail)."""
    with store.read() as conn:
        return _reports(conn, subscriber_id)


def _reports(conn: Connection, subscriber_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(bounce_reports)
        .where(bounce_reports.c.subscriber_id == subscriber_id)
        .order_by(bounce_reports.c.reported_at, bounce_reports.c.id)
    ).all()
    return [
        {
            "kind": row.kind,
            "status": row.status,
            "reported_at": row.reported_at,
            "recorded_at": row.recorded_at,
            "detail": row.detail,
        }
        for row in rows
    ]


def _delete_reports(conn: Connection, subscriber_id: int) -> None:
    """Erase hook: the reports quote the address, so they go with it."""
    conn.execute(delete(bounce_reports).where(bounce_reports.c.subscriber_id == subscriber_id))


def _describe_reports(conn: Connection, subscriber_id: int) -> tuple[str, Any]:
    """Describe hook: the reports about the subscriber, for the data-subject export."""
    reports = _reports(conn, subscriber_id)
    for report in reports:
        report["reported_at"] = iso(report["reported_at"])
        report["recorded_at"] = iso(report["recorded_at"])
    return "bounce_reports", reports


if _delete_reports not in ERASE_HOOKS:
    ERASE_HOOKS.append(_delete_reports)
if _describe_reports not in DESCRIBE_HOOKS:
    DESCRIBE_HOOKS.append(_describe_reports)
