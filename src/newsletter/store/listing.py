"""Who may be mailed, and counting and streaming subscribers for listings and exports.
A part of ``Store`` (``store.subscribers``).

``iter_recipients`` / ``is_sendable`` / ``sendable_ids`` return only members whose list
status is active (pending double opt-in members are never included) and whose global
status is active and whose address is not on the suppression list.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Select, and_, case, exists, func, select

from newsletter.errors import StoreError
from newsletter.store.addresses import address_hash, normalize_address
from newsletter.store.base import StoreBase, memberships_of, subscriber_from_row
from newsletter.store.ops import find_list_id
from newsletter.store.records import Recipient, Subscriber, SubscriberSummary
from newsletter.store.schema import (
    ACTIVE,
    ERASED,
    MEMBERSHIP_STATUSES,
    PENDING,
    SUBSCRIBER_STATUSES,
    SUPPRESSION_REASONS,
    UNSUBSCRIBED,
    lists,
    memberships,
    subscribers,
    suppressions,
)

T = TypeVar("T")


class Listing(StoreBase):
    """The send-time checks, and reading subscribers in bulk."""

    def is_suppressed(self, email: str) -> bool:
        """True if ``email`` unsubscribed from everything, bounced, complained or was erased."""
        digest = address_hash(normalize_address(email))
        with self.read() as conn:
            found = conn.scalar(
                select(suppressions.c.reason).where(suppressions.c.email_hash == digest)
            )
        return found is not None

    def is_sendable(self, subscriber_id: int, list_name: str) -> bool:
        """May a campaign for ``list_name`` go to ``subscriber_id`` right now?"""
        return subscriber_id in self.sendable_ids([subscriber_id], list_name)

    def sendable_ids(self, subscriber_ids: Collection[int], list_name: str) -> set[int]:
        """Those of ``subscriber_ids`` that may receive a campaign for ``list_name`` now.

        One query per call: the sender checks a whole batch just before sending it.
        """
        if not subscriber_ids:
            return set()
        with self.read() as conn:
            list_id = find_list_id(conn, list_name)
            if list_id is None:
                return set()
            found = conn.execute(
                _sendable(list_id).where(subscribers.c.id.in_(list(subscriber_ids)))
            ).all()
            suppressed = _suppressed_hashes(conn, [row.email for row in found])
        return {row.id for row in found if address_hash(row.email) not in suppressed}

    def iter_recipients(
        self, list_name: str, *, batch_size: int = 1000, after_id: int = 0
    ) -> Iterator[Recipient]:
        """Stream the sendable members of ``list_name`` in id order, from ``after_id`` on.

        Each batch is a fresh short query (keyset paging), so no transaction is
        held open during a long send and an unsubscribe between batches is seen.
        Raises StoreError if the list does not exist.
        """
        with self.read() as conn:
            list_id = self._require_list(conn, list_name)
        pages = self._keyset_pages(
            lambda conn: _sendable(list_id),
            memberships.c.subscriber_id,
            lambda conn, rows: _suppressed_hashes(conn, [row.email for row in rows]),
            after=after_id,
            batch_size=batch_size,
        )
        for rows, suppressed in pages:
            for row in rows:
                if address_hash(row.email) not in suppressed:
                    yield Recipient(row.id, row.email, row.name, row.attributes or {}, list_id)

    def count(self, *, list_name: str | None = None, status: str | None = None) -> int:
        """How many subscribers (on ``list_name``, with effective ``status``); erased excluded."""
        with self.read() as conn:
            if list_name is not None:
                list_id = self._require_list(conn, list_name)
                if status is not None:
                    _check_status(status, (*SUBSCRIBER_STATUSES, *MEMBERSHIP_STATUSES))
                return _count_on_list(conn, list_id, status)
            query = self._filtered(conn, list_name, status)
            return int(conn.scalar(select(func.count()).select_from(query.subquery())) or 0)

    def iter_subscribers(
        self,
        *,
        list_name: str | None = None,
        status: str | None = None,
        batch_size: int = 2000,
    ) -> Iterator[Subscriber]:
        """Stream subscribers (filtered like ``count``) with their memberships, in id order."""
        pages = self._keyset_pages(
            lambda conn: self._filtered(conn, list_name, status),
            subscribers.c.id,
            lambda conn, rows: memberships_of(conn, [row.id for row in rows]),
            batch_size=batch_size,
        )
        for rows, member_of in pages:
            for row in rows:
                yield subscriber_from_row(row, member_of.get(row.id, ()))

    def _list_names(self, conn: Connection) -> dict[int, str]:
        return {list_id: name for list_id, name in conn.execute(select(lists.c.id, lists.c.name))}

    def iter_summaries(
        self,
        *,
        list_name: str | None = None,
        status: str | None = None,
        batch_size: int = 5000,
    ) -> Iterator[SubscriberSummary]:
        """Stream subscribers like ``iter_subscribers``, lighter: list name -> status only.

        What export and listing need for a million rows: one keyset query per
        batch plus one for its memberships, no per-membership timestamps.
        """
        names: dict[int, str] = {}

        def list_statuses(conn: Connection, rows: list[Any]) -> dict[int, dict[str, str]]:
            """subscriber id -> {list name: status} for the ids of ``rows``."""
            nonlocal names
            if not names:
                names = self._list_names(conn)
            member_of: dict[int, dict[str, str]] = {}
            if rows:
                # an id range, not IN (thousands of ids): the primary key answers it
                found = conn.execute(
                    select(
                        memberships.c.subscriber_id, memberships.c.list_id, memberships.c.status
                    ).where(memberships.c.subscriber_id.between(rows[0][0], rows[-1][0]))
                )
                for subscriber_id, list_id, list_status in found.all():
                    if list_id not in names:  # a list created since the first batch
                        names = self._list_names(conn)
                    member_of.setdefault(subscriber_id, {})[names[list_id]] = list_status
            return member_of

        pages = self._keyset_pages(
            lambda conn: self._filtered(conn, list_name, status),
            subscribers.c.id,
            list_statuses,
            batch_size=batch_size,
        )
        for rows, member_of in pages:
            # positional unpacking: select(subscribers) yields the columns in table order
            for sid, email, name, attributes, state, created, updated in rows:
                on = member_of.get(sid, {})
                yield SubscriberSummary(
                    sid,
                    email,
                    name,
                    attributes or {},
                    state,
                    created,
                    updated,
                    dict(sorted(on.items())) if len(on) > 1 else on,
                )

    def _keyset_pages(
        self,
        query: Callable[[Connection], Select[Any]],
        key: ColumnElement[int],
        extra: Callable[[Connection, list[Any]], T],
        *,
        after: int = 0,
        batch_size: int,
    ) -> Iterator[tuple[list[Any], T]]:
        """(rows, ``extra(conn, rows)``) a batch at a time: ``query(conn)`` past ``after`` in
        ``key`` order (the rows' first column), each batch in its own short read.

        Keyset paging holds no transaction open between batches, so a long reader
        (a send, an export) sees what changed meanwhile and blocks no writer.
        """
        last = after
        while True:
            with self.read() as conn:
                rows = list(
                    conn.execute(query(conn).where(key > last).order_by(key).limit(batch_size))
                )
                found = extra(conn, rows)
            yield rows, found
            if len(rows) < batch_size:
                return
            last = rows[-1][0]

    def _filtered(self, conn: Connection, list_name: str | None, status: str | None) -> Select[Any]:
        query = select(subscribers).where(subscribers.c.status != ERASED)
        if list_name is None:
            if status is not None:
                _check_status(status, (*SUBSCRIBER_STATUSES, PENDING))
                query = query.where(_effective_status() == status)
            return query
        list_id = self._require_list(conn, list_name)
        query = query.join(
            memberships,
            and_(memberships.c.subscriber_id == subscribers.c.id, memberships.c.list_id == list_id),
        )
        if status is not None:
            _check_status(status, (*SUBSCRIBER_STATUSES, *MEMBERSHIP_STATUSES))
            effective = case(
                (subscribers.c.status != ACTIVE, subscribers.c.status), else_=memberships.c.status
            )
            query = query.where(effective == status)
        return query


def _count_on_list(conn: Connection, list_id: int, status: str | None) -> int:
    """``count`` for one list, from the memberships index alone plus the (few) suppressed
    subscribers: never a lookup of every member's subscriber row."""

    def members(statuses: tuple[str, ...]) -> int:
        query = select(func.count()).where(memberships.c.list_id == list_id)
        if statuses != MEMBERSHIP_STATUSES:
            query = query.where(memberships.c.status.in_(statuses))
        return int(conn.scalar(query) or 0)

    def suppressed_members(globally: tuple[str, ...], statuses: tuple[str, ...]) -> int:
        """Subscribers with a global status in ``globally`` and a membership in ``statuses``."""
        member = exists().where(
            memberships.c.subscriber_id == subscribers.c.id,
            memberships.c.list_id == list_id,
            memberships.c.status.in_(statuses),
        )
        query = select(func.count()).where(subscribers.c.status.in_(globally), member)
        return int(conn.scalar(query) or 0)

    # the effective status is the global one unless that is active, then the membership's
    if status is None:
        return members(MEMBERSHIP_STATUSES) - suppressed_members((ERASED,), MEMBERSHIP_STATUSES)
    if status in (ACTIVE, PENDING):
        return members((status,)) - suppressed_members(SUPPRESSION_REASONS, (status,))
    if status == ERASED:
        return 0
    count = suppressed_members((status,), MEMBERSHIP_STATUSES)
    if status == UNSUBSCRIBED:
        count += members((UNSUBSCRIBED,)) - suppressed_members(SUPPRESSION_REASONS, (UNSUBSCRIBED,))
    return count


def _check_status(status: str, allowed: tuple[str, ...]) -> None:
    if status not in allowed:
        raise StoreError(
            f"unknown status {status!r}",
            hint="use one of " + ", ".join(s for s in dict.fromkeys(allowed) if s != ERASED),
        )


def _effective_status() -> ColumnElement[str]:
    """``records.effective_status`` in SQL: a suppression, else what the lists add up to."""

    def on_a_list_as(status: str) -> ColumnElement[bool]:
        return exists().where(
            memberships.c.subscriber_id == subscribers.c.id, memberships.c.status == status
        )

    return case(
        (subscribers.c.status != ACTIVE, subscribers.c.status),
        (on_a_list_as(ACTIVE), ACTIVE),
        (on_a_list_as(PENDING), PENDING),
        else_=UNSUBSCRIBED,
    )


def _sendable(list_id: int) -> Select[Any]:
    """Members of ``list_id`` whose membership and global status are both active."""
    return (
        select(
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.name,
            subscribers.c.attributes,
        )
        .join(memberships, memberships.c.subscriber_id == subscribers.c.id)
        .where(
            memberships.c.list_id == list_id,
            memberships.c.status == ACTIVE,
            subscribers.c.status == ACTIVE,
            subscribers.c.email.is_not(None),
        )
    )


def _suppressed_hashes(conn: Connection, emails: list[str]) -> set[str]:
    """The hashes among ``emails`` on the suppression list (belt and braces at send time)."""
    if not emails:
        return set()
    digests = [address_hash(email) for email in emails]
    found = conn.scalars(
        select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(digests))
    )
    return set(found)
