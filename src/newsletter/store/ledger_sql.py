"""The sender's hot statements, compiled once per run (``store.compiled``) and run by
``LedgerSession`` on the raw DB-API cursor."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Integer, and_, bindparam, func, select, update

from newsletter.store.compiled import CompiledStatement
from newsletter.store.deliveries import DEFERRED, QUEUED, SENDING, SKIPPED, deliveries
from newsletter.store.schema import UtcDateTime, memberships, subscribers, suppressions


def result_processor(column: Any, dialect: Any) -> Any:
    """The driver value -> Python converter of ``column`` on ``dialect``, or None."""
    return column.type.dialect_impl(dialect).result_processor(dialect, None)


def with_reader(query: Any, list_id: Any) -> Any:
    """``query`` over deliveries joined to each row's subscriber and (if any) their
    membership of ``list_id``."""
    return (
        query.select_from(deliveries)
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .outerjoin(
            memberships,
            and_(
                memberships.c.subscriber_id == deliveries.c.subscriber_id,
                memberships.c.list_id == list_id,
            ),
        )
    )


class LedgerStatements(NamedTuple):
    """The compiled statements of one run (see ``compile_ledger``)."""

    queued: CompiledStatement
    due: CompiledStatement
    mark: CompiledStatement
    skip: CompiledStatement
    hand_back: CompiledStatement
    record: CompiledStatement


def _candidates() -> Any:
    """Rows to claim with their reader: id, subscriber id, attempts, first attempt,
    email, name, attributes, subscriber status, membership status."""
    return (
        with_reader(
            select(
                deliveries.c.id,
                deliveries.c.subscriber_id,
                deliveries.c.attempts,
                deliveries.c.first_attempt_at,
                subscribers.c.email,
                subscribers.c.name,
                subscribers.c.attributes,
                subscribers.c.status,
                memberships.c.status,
            ),
            bindparam("list_id"),
        )
        .where(deliveries.c.campaign_id == bindparam("campaign_id"))
        .order_by(deliveries.c.id)
        .limit(bindparam("limit"))
    )


def _now() -> Any:
    return bindparam("row_now", type_=UtcDateTime())


def _ours() -> Any:
    """SQL: the row is held by this run's sender (a sender whose lease was taken, its rows
    given to others, must not touch them)."""
    return deliveries.c.sender_id.is_not_distinct_from(bindparam("row_sender", type_=Integer()))


def _row_updates() -> dict[str, Any]:
    """The UPDATEs of single rows by ``row_id``: mark sending, skip, hand back, record."""
    row = deliveries.c.id == bindparam("row_id")
    return {
        "mark": update(deliveries)
        .where(row)
        .values(
            status=SENDING,
            sender_id=bindparam("row_sender", type_=Integer()),
            email=bindparam("row_email"),
            attempts=deliveries.c.attempts + 1,
            first_attempt_at=func.coalesce(deliveries.c.first_attempt_at, _now()),
            updated_at=_now(),
        ),
        "skip": update(deliveries)
        .where(row)
        .values(status=SKIPPED, reply=bindparam("row_reply"), updated_at=_now()),
        "hand_back": update(deliveries)
        .where(row, deliveries.c.status == SENDING, _ours())
        .values(
            status=QUEUED, sender_id=None, attempts=deliveries.c.attempts - 1, updated_at=_now()
        ),
        "record": update(deliveries)
        .where(row, _ours())
        .values(
            status=bindparam("row_status"),
            code=bindparam("row_code", type_=Integer()),
            enhanced=bindparam("row_enhanced"),
            reply=bindparam("row_reply"),
            next_attempt_at=bindparam("row_next", type_=UtcDateTime()),
            sent_at=bindparam("row_sent", type_=UtcDateTime()),
            updated_at=_now(),
        ),
    }


def compile_ledger(dialect: Any) -> LedgerStatements:
    """Every statement of the claim and record steps, compiled for ``dialect``.

    On PostgreSQL a claim locks the rows it reads and skips rows another sender's claim
    has locked, so senders sharing a campaign never wait for, nor take, each other's
    rows (SQLite has one writer at a time, so its claims never overlap).
    """
    candidates = _candidates().with_for_update(skip_locked=True, of=deliveries)
    due = candidates.where(
        deliveries.c.status == DEFERRED,
        deliveries.c.next_attempt_at <= bindparam("now", type_=UtcDateTime()),
    )
    updates = {name: CompiledStatement(s, dialect) for name, s in _row_updates().items()}
    return LedgerStatements(
        queued=CompiledStatement(candidates.where(deliveries.c.status == QUEUED), dialect),
        due=CompiledStatement(due, dialect),
        **updates,
    )


def blocked_hashes_statement(count: int, dialect: Any) -> CompiledStatement:
    """SELECT which of ``count`` address hashes (binds ``h0``...) are suppressed."""
    names = [f"h{i}" for i in range(count)]
    return CompiledStatement(
        select(suppressions.c.email_hash).where(
            suppressions.c.email_hash.in_([bindparam(name) for name in names])
        ),
        dialect,
    )
