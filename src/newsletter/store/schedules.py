"""The ``schedules`` table: scheduled sends and their state, claimed atomically.

One row per ``newsletter send ISSUE --at WHEN``. Its ``state`` moves one way:

``scheduled`` -> ``running`` -> ``done`` | ``failed``
``scheduled`` -> ``missed``     (nothing ran in time: never sent late)
``scheduled`` -> ``cancelled``  (``newsletter schedule cancel``)

Claiming takes the row's lease (``store.lease``: state, ``claimed_by``, ``heartbeat_at``)
with a single conditional UPDATE (``... WHERE id = ? AND state = 'scheduled'``): the one
process whose UPDATE changed a row owns the send, so two ``serve`` processes on one
database (SQLite or PostgreSQL) never both start it. A running send whose owner stopped
updating ``heartbeat_at`` (a crash, a kill) can be claimed again the same way, on the old
heartbeat and claim count; the ledger then resumes it without sending anyone a second copy.

Functions here take a ``Store`` and commit before they return; times are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    insert,
    or_,
    select,
    update,
)

from newsletter.errors import StoreError
from newsletter.store.lease import RUNNING, LeaseColumns, release, renew, take, update_if_held
from newsletter.store.records import utcnow
from newsletter.store.schema import UtcDateTime, metadata, sql_in
from newsletter.store.subscribers import Store

SCHEDULED = "scheduled"
DONE = "done"
FAILED = "failed"
MISSED = "missed"
CANCELLED = "cancelled"
SCHEDULE_STATES = (SCHEDULED, RUNNING, DONE, FAILED, MISSED, CANCELLED)
# A send in one of these states will still go out (or is going out).
OPEN_STATES = (SCHEDULED, RUNNING)

schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_dir", Text, nullable=False),
    Column("list_name", String(100), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("zone", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("claimed_by", String(200), nullable=True),
    Column("claimed_at", UtcDateTime, nullable=True),
    Column("heartbeat_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("note", Text, nullable=False, default=""),
    CheckConstraint(sql_in("state", SCHEDULE_STATES), name="state"),
    # the scheduler asks "what is scheduled and due?" every few seconds
    Index("ix_schedules_state_due_at", "state", "due_at"),
)

SCHEDULE_LEASE = LeaseColumns(
    schedules,
    state=schedules.c.state,
    holder=schedules.c.claimed_by,
    heartbeat=schedules.c.heartbeat_at,
    since=schedules.c.claimed_at,
)


@dataclass(frozen=True)
class ScheduledSend:
    """One scheduled send as stored: what, to which list, when, and how it went."""

    id: int
    issue_dir: str
    list_name: str
    due_at: datetime
    zone: str
    state: str
    created_at: datetime
    updated_at: datetime
    claimed_by: str | None
    claimed_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    attempts: int
    note: str


def _record(row: Any) -> ScheduledSend:
    fields = ScheduledSend.__dataclass_fields__
    return ScheduledSend(**{name: getattr(row, name) for name in fields})


def add_schedule(
    store: Store, *, issue_dir: str, list_name: str, due_at: datetime, zone: str
) -> ScheduledSend:
    """Record a send of ``issue_dir`` to ``list_name`` at ``due_at`` -> the new row.

    Raises StoreError when the same issue is already scheduled or running for that
    list: one issue goes to one list once, so a second schedule is always a mistake.
    """
    now = utcnow()
    with store.write() as conn:
        existing = conn.execute(
            select(schedules.c.id, schedules.c.due_at, schedules.c.state).where(
                schedules.c.issue_dir == issue_dir,
                schedules.c.list_name == list_name,
                schedules.c.state.in_(OPEN_STATES),
            )
        ).first()
        if existing is not None:
            raise StoreError(
                f"{issue_dir} is already {existing.state} for list {list_name!r} "
                f"(schedule #{existing.id}, due {existing.due_at:%Y-%m-%d %H:%M} UTC)",
                hint=f"run `newsletter schedule cancel {existing.id}` first to move it",
            )
        new_id = conn.execute(
            insert(schedules)
            .values(
                issue_dir=issue_dir,
                list_name=list_name,
                due_at=due_at,
                zone=zone,
                state=SCHEDULED,
                created_at=now,
                updated_at=now,
                attempts=0,
                note="",
            )
            .returning(schedules.c.id)
        ).scalar_one()
        row = conn.execute(select(schedules).where(schedules.c.id == new_id)).one()
    return _record(row)


def get_schedule(store: Store, schedule_id: int) -> ScheduledSend | None:
    """The scheduled send with ``schedule_id``, or None."""
    with store.read() as conn:
        row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
    return None if row is None else _record(row)


def list_schedules(store: Store, *, states: tuple[str, ...] | None = None) -> list[ScheduledSend]:
    """Every scheduled send (only those in ``states`` if given), soonest first."""
    query = select(schedules).order_by(schedules.c.due_at, schedules.c.id)
    if states is not None:
        query = query.where(schedules.c.state.in_(states))
    with store.read() as conn:
        return [_record(row) for row in conn.execute(query)]


def cancel_schedule(store: Store, schedule_id: int) -> ScheduledSend:
    """Cancel a send that has not started -> the updated row.

    Raises StoreError when there is no such schedule or it is no longer waiting.
    """
    now = utcnow()
    with store.write() as conn:
        changed = conn.execute(
            update(schedules)
            .where(schedules.c.id == schedule_id, schedules.c.state == SCHEDULED)
            .values(state=CANCELLED, updated_at=now, finished_at=now, note="cancelled")
        ).rowcount
        row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise StoreError(f"no scheduled send #{schedule_id}", hint="see `newsletter schedule list`")
    if not changed:
        raise StoreError(
            f"scheduled send #{schedule_id} is {row.state}, not waiting: nothing to cancel",
            hint="only sends in state 'scheduled' can be cancelled",
        )
    return _record(row)


def due_schedules(store: Store, now: datetime, *, stale_before: datetime) -> list[ScheduledSend]:
    """Sends to act on at ``now``: scheduled and due, or running with a heartbeat older
    than ``stale_before`` (their process died). Oldest due first."""
    with store.read() as conn:
        rows = conn.execute(
            select(schedules)
            .where(
                or_(
                    (schedules.c.state == SCHEDULED) & (schedules.c.due_at <= now),
                    (schedules.c.state == RUNNING) & SCHEDULE_LEASE.stale(stale_before),
                )
            )
            .order_by(schedules.c.due_at, schedules.c.id)
        )
        return [_record(row) for row in rows]


def claim_schedule(
    store: Store,
    scheduled: ScheduledSend,
    worker: str,
    now: datetime,
    *,
    stale_before: datetime | None = None,
) -> ScheduledSend | None:
    """Take ``scheduled`` for ``worker`` -> the claimed row, or None if someone else did.

    The UPDATE matches the state ``scheduled`` was read with; a running send is taken
    over only if it still has the same claim count and its heartbeat is older than
    ``stale_before``. Of several processes racing for one row exactly one changes it.
    """
    condition = [schedules.c.state == scheduled.state]
    if scheduled.state == RUNNING:
        if stale_before is None:
            return None
        condition.append(schedules.c.attempts == scheduled.attempts)
        condition.append(SCHEDULE_LEASE.stale(stale_before))
    elif scheduled.state != SCHEDULED:
        return None
    with store.write() as conn:
        taken = take(
            conn,
            SCHEDULE_LEASE,
            scheduled.id,
            worker,
            now,
            where=condition,
            claimed_at=now,
            updated_at=now,
            attempts=schedules.c.attempts + 1,
        )
        if not taken:
            return None
        row = conn.execute(select(schedules).where(schedules.c.id == scheduled.id)).one()
    return _record(row)


def _update_if_held(store: Store, schedule_id: int, worker: str, **values: Any) -> bool:
    """Set ``values`` on ``schedule_id`` if ``worker`` still runs it -> whether it did."""
    with store.write() as conn:
        return update_if_held(conn, SCHEDULE_LEASE, schedule_id, worker, **values)


def beat(store: Store, schedule_id: int, worker: str, now: datetime) -> bool:
    """Tell others ``worker`` is still running ``schedule_id`` -> False if it lost it."""
    with store.write() as conn:
        return renew(conn, SCHEDULE_LEASE, schedule_id, worker, now)


def finish_schedule(
    store: Store, schedule_id: int, worker: str, *, state: str, note: str, now: datetime
) -> bool:
    """Record how ``worker``'s run of ``schedule_id`` ended (done or failed) -> True if recorded."""
    if state not in (DONE, FAILED):
        raise ValueError(f"a run ends done or failed, not {state!r}")
    return _update_if_held(
        store,
        schedule_id,
        worker,
        state=state,
        note=note,
        finished_at=now,
        updated_at=now,
        heartbeat_at=now,
    )


def release_schedule(
    store: Store, schedule_id: int, worker: str, *, note: str, now: datetime
) -> bool:
    """Hand ``worker``'s running send back to the queue (it stopped part-way on purpose,
    e.g. ``serve`` shutting down) -> True if released. The next tick resumes it if it is
    still within the missed window."""
    with store.write() as conn:
        return release(
            conn, SCHEDULE_LEASE, schedule_id, worker, SCHEDULED, note=note, updated_at=now
        )


def mark_missed(store: Store, scheduled: ScheduledSend, note: str, now: datetime) -> bool:
    """Give up on ``scheduled`` (too late to send) -> True if this call marked it.

    Conditional like a claim, so two processes never both report the same miss.
    """
    condition = [schedules.c.id == scheduled.id, schedules.c.state == scheduled.state]
    if scheduled.state == RUNNING:
        condition.append(schedules.c.attempts == scheduled.attempts)
    with store.write() as conn:
        changed = conn.execute(
            update(schedules)
            .where(*condition)
            .values(state=MISSED, note=note, finished_at=now, updated_at=now)
        ).rowcount
    return changed == 1
