"""The ``recurring_occurrences`` and ``recurring_series`` tables: each time a recurring
series comes due, and which series are paused.

An occurrence is one (series, due time) pair, unique. Its ``state`` moves one way:

``pending`` -> ``composing`` (numbered) -> ``composed`` [-> ``approved``] -> ``sending``
-> ``sent``; ``pending`` -> ``skipped`` (too few new articles, paused, or by hand: no
number used); any open state -> ``missed`` (nothing ran it within the missed window).

Whoever works on an occurrence holds its lease (``store.lease``: ``lease_state`` is
``running`` while ``claimed_by`` holds it, ``heartbeat_at``), taken with one conditional
UPDATE, so of several ``run-due`` or ``serve`` processes exactly one works on it. The
number is set in the same transaction that moves it to ``composing``, from the highest
number the series used plus one, and (series, number) is unique: numbered once. That
transaction also records the selected articles (``selection``) and reserves them as
featured by the issue, so a rerun after a crash composes the same articles and a hand
compose in between cannot take them.

Functions here take a ``Store`` and commit before they return; times are aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from newsletter.store.featured import add_featured
from newsletter.store.lease import RUNNING, LeaseColumns, renew, take, update_if_held
from newsletter.store.records import utcnow
from newsletter.store.schema import UtcDateTime, metadata
from newsletter.store.subscribers import Store

PENDING = "pending"
COMPOSING = "composing"
COMPOSED = "composed"
APPROVED = "approved"
SENDING = "sending"
SENT = "sent"
SKIPPED = "skipped"
MISSED = "missed"
OPEN_STATES = (PENDING, COMPOSING, COMPOSED, APPROVED, SENDING)
IDLE = "idle"

occurrences = Table(
    "recurring_occurrences",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("series", String(60), nullable=False),
    # the send time; the compose runs review_before earlier
    Column("due_at", UtcDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("number", Integer, nullable=True),
    Column("issue_key", Text, nullable=True),
    Column("lease_state", String(16), nullable=False),
    Column("claimed_by", String(200), nullable=True),
    Column("claimed_at", UtcDateTime, nullable=True),
    Column("heartbeat_at", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("note", Text, nullable=False),
    # the articles selected when it was numbered (JSON), composed even after a crash
    Column("selection", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("series", "due_at"),
    UniqueConstraint("series", "number", name="uq_recurring_occurrences_number"),
)

series_table = Table(
    "recurring_series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(60), nullable=False, unique=True),
    Column("paused", Boolean, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

OCCURRENCE_LEASE = LeaseColumns(
    occurrences,
    state=occurrences.c.lease_state,
    holder=occurrences.c.claimed_by,
    heartbeat=occurrences.c.heartbeat_at,
    since=occurrences.c.claimed_at,
)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence as stored (see the module docstring for the states)."""

    id: int
    series: str
    due_at: datetime
    state: str
    number: int | None
    issue_key: str | None
    lease_state: str
    claimed_by: str | None
    heartbeat_at: datetime | None
    claimed_at: datetime | None
    attempts: int
    note: str


def _record(row: Any) -> Occurrence:
    return Occurrence(
        **{name: getattr(row, name) for name in Occurrence.__dataclass_fields__},
    )


def last_due(store: Store, series: str) -> datetime | None:
    """The latest due time recorded for ``series``, or None."""
    with store.read() as conn:
        found: datetime | None = conn.scalar(
            select(func.max(occurrences.c.due_at)).where(occurrences.c.series == series)
        )
    return found


def add_occurrence(
    store: Store, series: str, due_at: datetime, *, state: str = PENDING, note: str = ""
) -> bool:
    """Record that ``series`` comes due at ``due_at`` in ``state`` -> False when it was
    recorded already (by this or another process)."""
    now = utcnow()
    try:
        with store.write() as conn:
            exists = conn.scalar(
                select(occurrences.c.id).where(
                    occurrences.c.series == series, occurrences.c.due_at == due_at
                )
            )
            if exists is not None:
                return False
            conn.execute(
                insert(occurrences).values(
                    series=series,
                    due_at=due_at,
                    state=state,
                    lease_state=IDLE,
                    attempts=0,
                    note=note,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def open_occurrences(store: Store, series: str) -> list[Occurrence]:
    """The occurrences of ``series`` not finished yet, oldest first."""
    with store.read() as conn:
        rows = conn.execute(
            select(occurrences)
            .where(occurrences.c.series == series, occurrences.c.state.in_(OPEN_STATES))
            .order_by(occurrences.c.due_at)
        )
        return [_record(row) for row in rows]


def series_occurrences(store: Store, series: str, *, limit: int = 20) -> list[Occurrence]:
    """The latest ``limit`` occurrences of ``series``, newest first."""
    with store.read() as conn:
        rows = conn.execute(
            select(occurrences)
            .where(occurrences.c.series == series)
            .order_by(occurrences.c.due_at.desc())
            .limit(limit)
        )
        return [_record(row) for row in rows]


def find_occurrence(store: Store, *, issue_key: str) -> Occurrence | None:
    """The occurrence that composed the issue ``issue_key``, or None."""
    with store.read() as conn:
        row = conn.execute(select(occurrences).where(occurrences.c.issue_key == issue_key)).first()
    return None if row is None else _record(row)


def get_occurrence(store: Store, occurrence_id: int) -> Occurrence:
    """The occurrence ``occurrence_id`` as stored now."""
    with store.read() as conn:
        return _record(
            conn.execute(select(occurrences).where(occurrences.c.id == occurrence_id)).one()
        )


def claim(
    store: Store,
    seen: Occurrence,
    holder: str,
    now: datetime,
    *,
    stale_before: datetime,
    dead: bool,
) -> Occurrence | None:
    """Take the lease of ``seen`` for ``holder`` -> the claimed row, or None when another
    process holds it (or took it first). A held lease is taken over only when its holder
    went silent before ``stale_before`` or is a process of this host that is gone
    (``dead``), and only on the same reading (state, attempts)."""
    where = [occurrences.c.state == seen.state, occurrences.c.attempts == seen.attempts]
    if seen.lease_state == RUNNING:
        if dead:
            where.append(occurrences.c.claimed_by == seen.claimed_by)
        else:
            where.append(OCCURRENCE_LEASE.stale(stale_before))
    else:
        where.append(
            or_(occurrences.c.lease_state != RUNNING, OCCURRENCE_LEASE.stale(stale_before))
        )
    with store.write() as conn:
        taken = take(
            conn,
            OCCURRENCE_LEASE,
            seen.id,
            holder,
            now,
            where=where,
            claimed_at=now,
            updated_at=now,
            attempts=occurrences.c.attempts + 1,
        )
        if not taken:
            return None
        return _record(conn.execute(select(occurrences).where(occurrences.c.id == seen.id)).one())


def beat(store: Store, occurrence_id: int, holder: str) -> bool:
    """Tell others ``holder`` still works on ``occurrence_id`` -> False once it lost it."""
    with store.write() as conn:
        return renew(conn, OCCURRENCE_LEASE, occurrence_id, holder, utcnow())


def advance(store: Store, occurrence_id: int, worker: str, **values: Any) -> bool:
    """Set ``values`` (a new state, note…) on the occurrence ``worker`` holds -> whether
    it still held it."""
    with store.write() as conn:
        return update_if_held(
            conn, OCCURRENCE_LEASE, occurrence_id, worker, updated_at=utcnow(), **values
        )


def number_it(
    store: Store,
    occurrence_id: int,
    holder: str,
    issue_key: str,
    *,
    selection: str,
    issue_date: str,
    keys: Iterable[str],
) -> int | None:
    """In one transaction: give the held pending occurrence the series' next number,
    move it to ``composing`` with its issue folder and ``selection`` (the articles, as
    JSON), and record ``keys`` as featured by that issue (dated ``issue_date``), so no
    other compose takes them meanwhile -> the number, or None if not held."""
    with store.write() as conn:
        row = conn.execute(select(occurrences).where(occurrences.c.id == occurrence_id)).one()
        highest = conn.scalar(
            select(func.max(occurrences.c.number)).where(occurrences.c.series == row.series)
        )
        number = (highest or 0) + 1
        done = update_if_held(
            conn,
            OCCURRENCE_LEASE,
            occurrence_id,
            holder,
            state=COMPOSING,
            number=number,
            issue_key=issue_key,
            selection=selection,
            updated_at=utcnow(),
        )
        if done:
            add_featured(conn, issue_key, issue_date, keys)
    return number if done else None


def recorded_selection(store: Store, occurrence_id: int) -> str | None:
    """The selection (JSON) recorded when ``occurrence_id`` was numbered, or None."""
    with store.read() as conn:
        found: str | None = conn.scalar(
            select(occurrences.c.selection).where(occurrences.c.id == occurrence_id)
        )
    return found


def release(store: Store, occurrence_id: int, worker: str, **values: Any) -> bool:
    """Hand the lease of ``occurrence_id`` back (setting ``values`` too) -> whether held."""
    return advance(store, occurrence_id, worker, lease_state=IDLE, claimed_by=None, **values)


def finish_unheld(store: Store, seen: Occurrence, state: str, note: str) -> bool:
    """Set ``state`` on an occurrence nobody works on (its lease idle or its holder
    silent), on the reading ``seen`` -> True if this call changed it."""
    with store.write() as conn:
        changed = conn.execute(
            update(occurrences)
            .where(
                occurrences.c.id == seen.id,
                occurrences.c.state == seen.state,
                occurrences.c.attempts == seen.attempts,
            )
            .values(state=state, note=note, lease_state=IDLE, claimed_by=None, updated_at=utcnow())
        ).rowcount
    return bool(changed == 1)


def is_paused(store: Store, series: str) -> bool:
    """Whether ``series`` was paused with ``newsletter recurring pause``."""
    with store.read() as conn:
        return bool(conn.scalar(select(series_table.c.paused).where(series_table.c.name == series)))


def set_paused(store: Store, series: str, paused: bool) -> bool:
    """Pause or resume ``series`` -> whether that changed anything."""
    now = utcnow()
    with store.write() as conn:
        current = conn.scalar(select(series_table.c.paused).where(series_table.c.name == series))
        if current is None:
            conn.execute(insert(series_table).values(name=series, paused=paused, updated_at=now))
            return paused
        if bool(current) == paused:
            return False
        conn.execute(
            update(series_table)
            .where(series_table.c.name == series)
            .values(paused=paused, updated_at=now)
        )
    return True
