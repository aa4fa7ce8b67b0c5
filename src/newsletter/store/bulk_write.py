"""The write half of an import batch (``store.bulk``): a ``WritePlan`` collected while
deciding, run as a few executemany statements in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

from newsletter.store.ops import among, bulk_insert, record_consents
from newsletter.store.schema import UNSUBSCRIBED, memberships, subscribers, suppressions


@dataclass
class WritePlan:
    """Everything one batch will write, collected before any statement runs."""

    new_subscribers: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriber_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    leave_all_lists: list[int] = field(default_factory=list)
    # (subscriber id, or the email of a subscriber inserted by this batch) -> rows
    membership_inserts: list[dict[str, Any]] = field(default_factory=list)
    membership_updates: list[dict[str, Any]] = field(default_factory=list)
    suppression_inserts: list[dict[str, Any]] = field(default_factory=list)
    suppression_updates: list[dict[str, Any]] = field(default_factory=list)
    suppression_deletes: list[str] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)


def execute_plan(conn: Connection, plan: WritePlan, now: datetime) -> None:
    """Run the planned statements, new subscribers first so their ids can be filled in."""
    new_ids = _insert_subscribers(conn, plan)

    def resolve(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # in place: the plan is used once, and copying every row cost more than the SQL
        for row in rows:
            who = row.pop("_who")
            row["subscriber_id"] = new_ids[who] if isinstance(who, str) else who
        return rows

    if plan.subscriber_updates:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == bindparam("b_id"))
            .values(
                name=bindparam("b_name"),
                attributes=bindparam("b_attributes", type_=subscribers.c.attributes.type),
                status=bindparam("b_status"),
                updated_at=now,
            ),
            list(plan.subscriber_updates.values()),
        )
    _write_memberships(conn, plan, resolve(plan.membership_inserts), now)
    _write_suppressions(conn, plan, now)
    record_consents(conn, resolve(plan.consents))


def _insert_subscribers(conn: Connection, plan: WritePlan) -> dict[str, int]:
    """Insert the plan's new subscribers -> address: new id."""
    if not plan.new_subscribers:
        return {}
    rows = list(plan.new_subscribers.values())
    if conn.dialect.name == "postgresql":
        # the ids come from the column's own sequence first, in file order as the insert
        # would take them, so nothing has to look 1,000 addresses up again afterwards
        ids = _next_ids(conn, len(rows))
        for row, subscriber_id in zip(rows, ids, strict=True):
            row["id"] = subscriber_id
        bulk_insert(conn, subscribers, rows)
        return dict(zip(plan.new_subscribers, ids, strict=True))
    bulk_insert(conn, subscribers, rows)
    found = conn.execute(
        select(subscribers.c.email, subscribers.c.id).where(
            among(conn, subscribers.c.email, plan.new_subscribers)
        )
    )
    return {email: subscriber_id for email, subscriber_id in found}


def _next_ids(conn: Connection, count: int) -> list[int]:
    """PostgreSQL: ``count`` new values of the subscribers id sequence, ascending."""
    values = conn.execute(_NEXT_IDS, {"count": count})
    return sorted(values.scalars())


# One parameter, so the text is the same for every batch; the sequence is looked up once
# (MATERIALIZED), not once per value, which cost seven times the nextval calls.
_NEXT_IDS = text(
    "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('subscribers', 'id')::regclass AS seq) "
    "SELECT nextval(s.seq) FROM s, generate_series(1, :count)"
)


def _write_memberships(
    conn: Connection, plan: WritePlan, inserts: list[dict[str, Any]], now: datetime
) -> None:
    """Leave every list where planned, then insert ``inserts`` and apply the updates."""
    if plan.leave_all_lists:
        conn.execute(
            update(memberships)
            .where(
                memberships.c.subscriber_id == bindparam("b_sid"),
                memberships.c.status != UNSUBSCRIBED,
            )
            .values(status=UNSUBSCRIBED, updated_at=now),
            [{"b_sid": sid} for sid in plan.leave_all_lists],
        )
    if inserts:
        bulk_insert(conn, memberships, inserts)
    if plan.membership_updates:
        conn.execute(
            update(memberships)
            .where(
                memberships.c.subscriber_id == bindparam("b_sid"),
                memberships.c.list_id == bindparam("b_lid"),
            )
            .values(
                status=bindparam("b_status"),
                updated_at=now,
                confirmed_at=func.coalesce(
                    bindparam("b_confirmed", type_=memberships.c.confirmed_at.type),
                    memberships.c.confirmed_at,
                ),
            ),
            plan.membership_updates,
        )


def _write_suppressions(conn: Connection, plan: WritePlan, now: datetime) -> None:
    if plan.suppression_deletes:
        conn.execute(
            suppressions.delete().where(suppressions.c.email_hash == bindparam("b_hash")),
            [{"b_hash": digest} for digest in plan.suppression_deletes],
        )
    if plan.suppression_inserts:
        conn.execute(insert(suppressions), [{**row, "at": now} for row in plan.suppression_inserts])
    if plan.suppression_updates:
        conn.execute(
            update(suppressions)
            .where(suppressions.c.email_hash == bindparam("b_hash"))
            .values(reason=bindparam("b_reason"), at=now),
            plan.suppression_updates,
        )
