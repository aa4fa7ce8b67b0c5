"""``StoreBase``: one SQLAlchemy engine, its read and write transactions, lists, and
loading one subscriber; what every part of ``Store`` (``store.subscribers``) builds on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.errors import StoreError
from newsletter.store.addresses import normalize_address
from newsletter.store.ops import find_list_id, list_ids
from newsletter.store.records import Membership, Subscriber, utcnow
from newsletter.store.schema import ERASED, lists, memberships, subscribers

log = logging.getLogger(__name__)

# the execution option that makes a connection's BEGIN an IMMEDIATE one on SQLite
WRITE_OPTION = "newsletter_write"

P = ParamSpec("P")
T = TypeVar("T")
_ATTEMPTS = 3


def retry_conflicts(method: Callable[P, T]) -> Callable[P, T]:
    """Run a write transaction again when a concurrent writer won a race on a unique key.

    On PostgreSQL two imports (or a web subscribe and an import) may insert the
    same new address or list at once; the loser's transaction rolls back whole
    and simply runs again, now seeing the winner's row. SQLite never races here
    (``BEGIN IMMEDIATE``), so a constraint failure there is real and raised at once.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        store = args[0]
        assert isinstance(store, StoreBase)
        attempts = 1 if store.engine.dialect.name == "sqlite" else _ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return method(*args, **kwargs)
            except IntegrityError:
                if attempt == attempts:
                    raise
                log.info("write conflict with another writer, retrying (%d)", attempt)
        raise AssertionError("unreachable")

    return wrapper


class StoreBase:
    """The subscriber database behind one SQLAlchemy engine (see ``open_store``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._list_cache: dict[str, int] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed when the block ends."""
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _write_with_lists(self) -> Iterator[tuple[Connection, dict[str, int]]]:
        """A write transaction plus a copy of the list-id cache, kept only if it commits.

        A list created in a transaction that rolls back must not stay cached:
        its id would point at nothing (or at a later, different list).
        """
        cache = dict(self._list_cache)
        with self.write() as conn:
            yield conn, cache
        self._list_cache.update(cache)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection; its snapshot ends when the block ends."""
        with self.engine.connect() as conn:
            yield conn

    # -- lists ------------------------------------------------------------------------------

    @retry_conflicts
    def ensure_list(self, name: str) -> int:
        """Id of list ``name``, created if needed."""
        with self._write_with_lists() as (conn, cache):
            list_id = list_ids(conn, [name], utcnow(), cache)[name.strip()]
        return list_id

    def list_id(self, name: str) -> int | None:
        """Id of list ``name``, or None if there is no such list."""
        with self.read() as conn:
            return find_list_id(conn, name)

    def list_name(self, list_id: int) -> str | None:
        """Name of the list with ``list_id``, or None."""
        with self.read() as conn:
            return conn.scalar(select(lists.c.name).where(lists.c.id == list_id))

    def list_names(self) -> list[str]:
        """Every list name, alphabetically."""
        with self.read() as conn:
            return list(conn.scalars(select(lists.c.name).order_by(lists.c.name)))

    def _require_list(self, conn: Connection, name: str) -> int:
        list_id = find_list_id(conn, name)
        if list_id is None:
            raise StoreError(
                f"no list named {name!r}",
                hint="import or add subscribers with --list to create it",
            )
        return list_id

    # -- one subscriber ---------------------------------------------------------------------

    def get(self, subscriber_id: int) -> Subscriber | None:
        """The subscriber with ``subscriber_id`` and their memberships, or None (also if erased)."""
        with self.read() as conn:
            return self._load(conn, subscribers.c.id == subscriber_id)

    def get_by_email(self, email: str) -> Subscriber | None:
        """The subscriber with address ``email`` (any case), or None."""
        normalized = normalize_address(email)
        with self.read() as conn:
            return self._load(conn, subscribers.c.email == normalized)

    def _load(self, conn: Connection, condition: Any) -> Subscriber | None:
        row = conn.execute(
            select(subscribers).where(condition, subscribers.c.status != ERASED)
        ).first()
        if row is None:
            return None
        return subscriber_from_row(row, memberships_of(conn, [row.id]).get(row.id, ()))

    @staticmethod
    def _set_membership(
        conn: Connection,
        subscriber_id: int,
        list_id: int,
        status: str,
        now: datetime,
        *,
        confirmed: bool = False,
    ) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if confirmed:
            values["confirmed_at"] = now
        conn.execute(
            update(memberships)
            .where(memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id)
            .values(**values)
        )

    @staticmethod
    def _resolve(conn: Connection, who: int | str) -> tuple[int | None, str | None]:
        """Id or address -> (subscriber id or None, normalised address or None)."""
        if isinstance(who, int):
            email = conn.scalar(select(subscribers.c.email).where(subscribers.c.id == who))
            return (who, email) if email is not None else (None, None)
        normalized = normalize_address(who)
        subscriber_id = conn.scalar(
            select(subscribers.c.id).where(subscribers.c.email == normalized)
        )
        return subscriber_id, normalized


def memberships_of(conn: Connection, ids: list[int]) -> dict[int, tuple[Membership, ...]]:
    """Subscriber id -> their memberships (by list name), for the subscribers ``ids``."""
    if not ids:
        return {}
    found = conn.execute(
        select(memberships, lists.c.name.label("list_name"))
        .join(lists, lists.c.id == memberships.c.list_id)
        .where(memberships.c.subscriber_id.in_(ids))
        .order_by(memberships.c.subscriber_id, lists.c.name)
    )
    out: dict[int, list[Membership]] = {}
    for row in found:
        out.setdefault(row.subscriber_id, []).append(
            Membership(
                row.list_id,
                row.list_name,
                row.status,
                row.created_at,
                row.updated_at,
                row.confirmed_at,
            )
        )
    return {key: tuple(value) for key, value in out.items()}


def subscriber_from_row(row: Any, member_of: tuple[Membership, ...]) -> Subscriber:
    """A ``subscribers`` row and its memberships -> Subscriber."""
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        attributes=row.attributes or {},
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        memberships=member_of,
    )
