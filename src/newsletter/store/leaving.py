"""Leaving: unsubscribes (from a list or from everything), an operator's removal, and
suppression after a bounce or complaint. A part of ``Store`` (``store.subscribers``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
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
    bulk_insert,
    consent_row,
    find_list_id,
    record_consents,
    suppress_subscriber,
)
from newsletter.store.records import Consent, utcnow
from newsletter.store.schema import BOUNCED, COMPLAINED, UNSUBSCRIBED, memberships


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

    def leave_lists_in(
        self, conn: Connection, leaving: Sequence[tuple[int, int, Consent]]
    ) -> list[bool]:
        """In the caller's ``write()`` transaction, take each (subscriber id, list id) off
        that list, recording the consent of each one that changed -> changed, per entry
        (a pair repeated in ``leaving`` changes once: its first entry).

        Several requests share one transaction this way (and one commit); a few
        statements do it however many there are: one UPDATE per list and one INSERT of
        the consent rows.
        """
        now = utcnow()
        pairs = list(dict.fromkeys((who, list_id) for who, list_id, _ in leaving))
        left = self._leave_all(conn, pairs, now)
        changed = []
        for who, list_id, _ in leaving:
            changed.append((who, list_id) in left)
            left.discard((who, list_id))
        rows = [
            consent_row(who, list_id, "unsubscribe", consent, now)
            for (who, list_id, consent), did in zip(leaving, changed, strict=True)
            if did
        ]
        record_consents(conn, rows)
        return changed

    @staticmethod
    def _leave_all(
        conn: Connection, pairs: Sequence[tuple[int, int]], now: datetime
    ) -> set[tuple[int, int]]:
        """Every (subscriber id, list id) of ``pairs`` off its list -> the pairs that changed.

        One read of their memberships (FOR UPDATE: on PostgreSQL a concurrent change of the
        same row waits, so only one records it), one executemany UPDATE of those still on
        their list; a pair never on its list gets an unsubscribed membership, so no import
        adds it. Looked up by subscriber id: SQLite's planner, without statistics, would
        walk a whole list's members for "this list and these ids".
        """
        ids = sorted({who for who, _ in pairs})
        found = conn.execute(
            select(memberships.c.subscriber_id, memberships.c.list_id, memberships.c.status)
            .where(among(conn, memberships.c.subscriber_id, ids))
            .with_for_update()
        )
        status = {(who, list_id): current for who, list_id, current in found}
        leaving = [pair for pair in pairs if status.get(pair, UNSUBSCRIBED) != UNSUBSCRIBED]
        never = [pair for pair in pairs if pair not in status]
        if leaving:
            statement = _leave_statement(conn.dialect)
            rows = [
                {"who": who, "list_id": list_id, "left": UNSUBSCRIBED, "now": now}
                for who, list_id in leaving
            ]
            conn.exec_driver_sql(statement.sql, statement.many(rows))
        bulk_insert(conn, memberships, [_left_row(who, list_id, now) for who, list_id in never])
        return {*leaving, *never}

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


def _left_row(subscriber_id: int, list_id: int, now: datetime) -> dict[str, object]:
    """A ``memberships`` row of someone who left a list they were never on."""
    return {
        "subscriber_id": subscriber_id,
        "list_id": list_id,
        "status": UNSUBSCRIBED,
        "created_at": now,
        "updated_at": now,
    }


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
