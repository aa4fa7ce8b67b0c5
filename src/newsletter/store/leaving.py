"""Leaving: unsubscribes (from a list or from everything), an operator's removal, and
suppression after a bounce or complaint. A part of ``Store`` (``store.subscribers``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from newsletter.errors import StoreError
from newsletter.store.base import StoreBase, retry_conflicts
from newsletter.store.compiled import CompiledStatement
from newsletter.store.ops import (
    SUPPRESS_ACTION,
    add_suppression,
    among,
    consent_row,
    find_list_id,
    record_consents,
    suppress_subscriber,
)
from newsletter.store.records import Consent, utcnow
from newsletter.store.schema import (
    ACTIVE,
    BOUNCED,
    COMPLAINED,
    ERASED,
    UNSUBSCRIBED,
    lists,
    memberships,
    subscribers,
)


@dataclass(frozen=True, slots=True)
class ListMember:
    """A subscriber (not erased) and their membership of one list: what an unsubscribe
    link reads, shows and changes."""

    subscriber_id: int
    email: str
    subscriber_status: str
    list_id: int
    list_name: str
    status: str  # the membership's

    @property
    def has_left(self) -> bool:
        """Whether they are off this list, or off everything, already."""
        return self.status == UNSUBSCRIBED or self.subscriber_status != ACTIVE


class Leaving(StoreBase):
    """Taking people off lists, or off everything."""

    @retry_conflicts
    def unsubscribe(
        self,
        who: int | str,
        *,
        consent: Consent,
        list_name: str | None = None,
        action: str = "unsubscribe",
    ) -> bool:
        """Unsubscribe ``who`` (id or address) from ``list_name``, or from everything.

        From everything (no list) puts the address on the suppression list, even
        an address we never had, so no later import can add it. Repeating it
        changes nothing and records nothing. Returns True if anything changed.
        """
        now = utcnow()
        with self.write() as conn:
            subscriber_id, email = self._resolve(conn, who)
            if list_name is None:
                if subscriber_id is None:
                    return email is not None and add_suppression(conn, email, UNSUBSCRIBED, now)
                assert email is not None
                changed = suppress_subscriber(conn, subscriber_id, email, UNSUBSCRIBED, now)
                list_id = None
            else:
                list_id = find_list_id(conn, list_name)
                if subscriber_id is None or list_id is None:
                    return False
                changed = self._leave_list(conn, subscriber_id, list_id, now)
            if changed:
                record_consents(conn, [consent_row(subscriber_id, list_id, action, consent, now)])
            return changed

    @staticmethod
    def list_members(
        conn: Connection, ids: Sequence[int], *, lock: bool = False
    ) -> dict[tuple[int, int], ListMember]:
        """(subscriber id, list id) -> ListMember, for every membership of the subscribers
        ``ids`` that are not erased: one query however many.

        ``lock`` (in a ``write()`` transaction): FOR UPDATE of those memberships, so on
        PostgreSQL a concurrent change of one waits and this reads it as changed; rows
        come (and are locked) in id order, so two such batches sharing a person (two
        serve processes) wait for each other instead of deadlocking. Looked
        up by subscriber id only: SQLite's planner, without statistics, would walk a whole
        list's members for "this list and these ids".
        """
        query = (
            select(
                subscribers.c.id,
                subscribers.c.email,
                subscribers.c.status,
                memberships.c.list_id,
                lists.c.name,
                memberships.c.status,
            )
            .select_from(subscribers)
            .join(memberships, memberships.c.subscriber_id == subscribers.c.id)
            .join(lists, lists.c.id == memberships.c.list_id)
            .where(among(conn, subscribers.c.id, sorted(set(ids))), subscribers.c.status != ERASED)
            .order_by(subscribers.c.id, memberships.c.list_id)
        )
        if lock:
            query = query.with_for_update(of=memberships)
        return {(row[0], row[3]): ListMember(*row) for row in conn.execute(query)}

    @staticmethod
    def leave(conn: Connection, leaving: Sequence[tuple[ListMember, Consent]]) -> list[bool]:
        """In the caller's ``write()`` transaction, take each member (read there by
        ``list_members(..., lock=True)``) off their list, recording the consent of each
        one that changed -> changed, per entry (a member repeated changes once: first).

        Several requests share one transaction this way (and one commit), in two
        statements however many: one executemany UPDATE, one INSERT of the consents.
        """
        now = utcnow()
        seen: set[tuple[int, int]] = set()
        changed = []
        for member, _ in leaving:
            key = (member.subscriber_id, member.list_id)
            changed.append(member.status != UNSUBSCRIBED and key not in seen)
            seen.add(key)
        moved = [wish for wish, did in zip(leaving, changed, strict=True) if did]
        if moved:
            statement = _leave_statement(conn.dialect)
            rows = [
                {"who": m.subscriber_id, "list_id": m.list_id, "left": UNSUBSCRIBED, "now": now}
                for m, _ in moved
            ]
            conn.exec_driver_sql(statement.sql, statement.many(rows))
        record_consents(
            conn,
            [consent_row(m.subscriber_id, m.list_id, "unsubscribe", c, now) for m, c in moved],
        )
        return changed

    @retry_conflicts
    def remove(self, email: str, *, list_name: str, consent: Consent) -> str:
        """Take ``email`` off ``list_name`` (an operator's removal) -> what happened.

        "removed", "already removed" (left before), or "not on list": someone who was
        never on the list gets no membership, unlike ``unsubscribe`` which records the
        person's own wish. Raises StoreError for an unknown address or list.
        """
        now = utcnow()
        with self.write() as conn:
            subscriber_id, normalized = self._resolve(conn, email)
            if subscriber_id is None:
                raise StoreError(f"{normalized} is not a subscriber", hint="check the address")
            list_id = self._require_list(conn, list_name)
            status = conn.scalar(
                select(memberships.c.status)
                .where(
                    memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id
                )
                .with_for_update()
            )
            if status is None:
                return "not on list"
            if status == UNSUBSCRIBED:
                return "already removed"
            self._set_membership(conn, subscriber_id, list_id, UNSUBSCRIBED, now)
            record_consents(conn, [consent_row(subscriber_id, list_id, "remove", consent, now)])
            return "removed"

    def mark_bounced(self, who: int | str, *, consent: Consent | None = None) -> bool:
        """A hard bounce (or soft bounces past the limit): suppress ``who`` everywhere."""
        return self._suppress(who, BOUNCED, consent or Consent(source="mail"))

    def mark_complained(self, who: int | str, *, consent: Consent | None = None) -> bool:
        """A spam complaint (ARF report): suppress ``who`` everywhere."""
        return self._suppress(who, COMPLAINED, consent or Consent(source="mail"))

    @retry_conflicts
    def _suppress(self, who: int | str, reason: str, consent: Consent) -> bool:
        now = utcnow()
        with self.write() as conn:
            subscriber_id, email = self._resolve(conn, who)
            if email is None:
                return False
            if subscriber_id is None:
                return add_suppression(conn, email, reason, now)
            changed = suppress_subscriber(conn, subscriber_id, email, reason, now)
            if changed:
                action = SUPPRESS_ACTION[reason]
                record_consents(conn, [consent_row(subscriber_id, None, action, consent, now)])
            return changed

    def _leave_list(
        self, conn: Connection, subscriber_id: int, list_id: int, now: datetime
    ) -> bool:
        status = conn.scalar(
            select(memberships.c.status)
            .where(memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id)
            .with_for_update()
        )
        if status == UNSUBSCRIBED:
            return False
        if status is None:  # never on it: remember the wish so an import cannot add them
            conn.execute(
                insert(memberships).values(
                    subscriber_id=subscriber_id,
                    list_id=list_id,
                    status=UNSUBSCRIBED,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            self._set_membership(conn, subscriber_id, list_id, UNSUBSCRIBED, now)
        return True


@functools.lru_cache(maxsize=4)
def _leave_statement(dialect: Any) -> CompiledStatement:
    """UPDATE one membership's status, compiled once per dialect (binds: who, list_id,
    left (the new status), now)."""
    return CompiledStatement(
        update(memberships)
        .where(
            memberships.c.subscriber_id == bindparam("who"),
            memberships.c.list_id == bindparam("list_id"),
        )
        .values(status=bindparam("left"), updated_at=bindparam("now")),
        dialect,
    )
