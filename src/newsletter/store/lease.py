"""Leases: the one process running a campaign or a scheduled send, and how others see it died.

A lease is three columns of a row: a state column (``running`` while held), a holder
column naming the process (``host:pid:thread``, from ``holder_name``) and a heartbeat
time the holder refreshes while it works. Another process may take a running row over
only once the heartbeat is older than the stale limit of that use (each caller passes
its own), and always with one conditional UPDATE on what it read, so of several
processes racing for one row exactly one wins, on SQLite and PostgreSQL alike.

Functions take an open ``Connection`` inside the caller's write transaction.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Table, func, select, update

log = logging.getLogger(__name__)

RUNNING = "running"
# the holder columns are String(200)
HOLDER_LENGTH = 200


@dataclass(frozen=True)
class LeaseColumns:
    """Where a table keeps its lease: ``state`` is ``running`` while ``holder`` holds it;
    ``heartbeat`` is the holder's last sign of life, or ``since`` if it never beat."""

    table: Table
    state: Column[Any]
    holder: Column[Any]
    heartbeat: Column[Any]
    since: Column[Any] | None = None

    def last_sign_of_life(self) -> ColumnElement[Any]:
        """The time the holder last said it was alive, as an SQL expression."""
        if self.since is None:
            return self.heartbeat
        return func.coalesce(self.heartbeat, self.since)

    def stale(self, before: datetime) -> ColumnElement[bool]:
        """SQL: the holder has been silent since before ``before``."""
        return self.last_sign_of_life() < before

    def held_by(self, row_id: int, holder: str) -> list[ColumnElement[bool]]:
        """SQL conditions: row ``row_id`` is running and held by ``holder``."""
        return [
            self.table.c.id == row_id,
            self.state == RUNNING,
            self.holder == holder[:HOLDER_LENGTH],
        ]


@dataclass(frozen=True)
class LeaseReading:
    """A lease as read inside a write transaction: its state, its holder, and whether the
    holder gave a sign of life since the stale limit (``fresh``)."""

    state: str
    holder: str | None
    fresh: bool

    def held_elsewhere(self, holder: str) -> bool:
        """Whether a live process other than ``holder`` holds it: running, fresh, and not
        a process of this host that no longer exists."""
        if self.state != RUNNING or self.holder == holder:
            return False
        return self.fresh and not holder_is_dead(self.holder)

    def unchanged(self, lease: LeaseColumns) -> list[ColumnElement[bool]]:
        """SQL conditions: the lease still has the state and holder read (for ``take``)."""
        same_holder = lease.holder.is_(None) if self.holder is None else lease.holder == self.holder
        return [lease.state == self.state, same_holder]


def read_lease(
    conn: Connection, lease: LeaseColumns, row_id: int, stale_before: datetime
) -> LeaseReading | None:
    """The lease of row ``row_id`` as it is now, or None when there is no such row."""
    row = conn.execute(
        select(lease.state, lease.holder, lease.last_sign_of_life() >= stale_before).where(
            lease.table.c.id == row_id
        )
    ).first()
    return None if row is None else LeaseReading(row[0], row[1], bool(row[2]))


def holder_name() -> str:
    """``host:pid:thread`` of the caller, as stored in a holder column (two threads of one
    process, say a CLI send and serve's scheduler, are two holders)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def holder_is_dead(holder: str | None) -> bool:
    """True when ``holder`` names a process on this host that no longer exists."""
    if not holder:
        return True
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def update_if_held(
    conn: Connection, lease: LeaseColumns, row_id: int, holder: str, **values: Any
) -> bool:
    """Set ``values`` on row ``row_id`` if ``holder`` still holds it -> whether it did.

    The condition keeps two processes apart: a row taken over by another holder is
    never touched by the one that lost it.
    """
    changed = conn.execute(
        update(lease.table).where(*lease.held_by(row_id, holder)).values(**values)
    ).rowcount
    return bool(changed == 1)


def release(
    conn: Connection,
    lease: LeaseColumns,
    row_id: int,
    holder: str,
    state: str,
    **values: Any,
) -> bool:
    """``holder`` lets go of row ``row_id``, leaving it in ``state`` with ``values`` ->
    whether it still held it (a row taken over meanwhile is left to its new holder)."""
    return update_if_held(
        conn, lease, row_id, holder, **{lease.state.name: state, lease.holder.name: None}, **values
    )


def renew(conn: Connection, lease: LeaseColumns, row_id: int, holder: str, now: datetime) -> bool:
    """Tell other processes ``holder`` still works on ``row_id`` -> False if it lost it."""
    return update_if_held(conn, lease, row_id, holder, **{lease.heartbeat.name: now})


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds on a thread while the block runs.

    ``beat`` returns False once the lease was lost, which ends the beating; an error
    is logged and the next beat tried, since a locked database must not end the work.
    """

    def __init__(self, beat: Callable[[], bool], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{name}-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._beat():
                    log.warning("%s was taken over by another process", self._name)
                    return
            except Exception:
                log.exception("heartbeat of %s failed", self._name)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def take(
    conn: Connection,
    lease: LeaseColumns,
    row_id: int,
    holder: str,
    now: datetime,
    *,
    where: list[ColumnElement[bool]],
    **values: Any,
) -> bool:
    """Make ``holder`` run row ``row_id`` if ``where`` (what the caller read: its state,
    holder, claim count, staleness) still holds -> whether this call took it.

    One conditional UPDATE, so of several processes racing on the same reading exactly
    one changes the row; ``values`` are set along with the lease columns.
    """
    changed = conn.execute(
        update(lease.table)
        .where(lease.table.c.id == row_id, *where)
        .values(
            {
                lease.state.name: RUNNING,
                lease.holder.name: holder[:HOLDER_LENGTH],
                lease.heartbeat.name: now,
                **values,
            }
        )
    ).rowcount
    return bool(changed == 1)
