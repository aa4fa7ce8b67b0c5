"""Joining: single opt-in adds and imports, double opt-in requests, confirmations, and
forgetting requests nobody confirmed. A part of ``Store`` (``store.subscribers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, exists, insert, select, update

from newsletter.store.addresses import address_hash, normalize_address
from newsletter.store.base import StoreBase, retry_conflicts
from newsletter.store.bulk import apply_batch, refuse_unstorable
from newsletter.store.ops import (
    consent_row,
    find_list_id,
    lift_suppression,
    list_ids,
    record_consents,
)
from newsletter.store.records import BatchResult, Consent, ImportRow, utcnow
from newsletter.store.schema import (
    ACTIVE,
    ERASED,
    PENDING,
    consents,
    memberships,
    subscribers,
    suppressions,
)


@dataclass(frozen=True)
class PendingResult:
    """What ``add_pending`` left: the ids for a confirm link and the membership status."""

    subscriber_id: int
    list_id: int
    status: str


class Subscribing(StoreBase):
    """Adding people to lists, at once or on confirmation."""

    def add(
        self,
        email: str,
        *,
        list_name: str,
        consent: Consent,
        name: str = "",
        attributes: dict[str, Any] | None = None,
        resubscribe: str | None = None,
    ) -> str:
        """Subscribe ``email`` to ``list_name`` at once (single opt-in) -> the outcome.

        Outcome: "added", "updated", "unchanged", "resubscribed", or "suppressed"
        when the person left before and ``resubscribe`` (how they consented
        again) is not given.
        """
        row = ImportRow(
            email=normalize_address(email), name=" ".join(name.split()), attributes=attributes or {}
        )
        result = self.import_batch(
            [row], list_name=list_name, consent=consent, action="subscribe", resubscribe=resubscribe
        )
        return result.outcomes[row.email]

    @retry_conflicts
    def import_batch(
        self,
        rows: Sequence[ImportRow],
        *,
        list_name: str,
        consent: Consent,
        action: str = "import",
        resubscribe: str | None = None,
        checked: bool = False,
    ) -> BatchResult:
        """Apply ``rows`` in ONE transaction -> counts; nothing of it is kept if it fails.

        ``checked``: the caller already left out every row with an ``unstorable_field``
        (an import does, to report each by its line), so they are not looked at again.
        """
        with self._write_with_lists() as (conn, cache):
            result = apply_batch(
                conn,
                rows,
                default_list=list_name,
                consent=consent,
                action=action,
                resubscribe=resubscribe,
                now=utcnow(),
                list_cache=cache,
                checked=checked,
            )
        return result

    @retry_conflicts
    def add_pending(
        self,
        email: str,
        *,
        list_name: str,
        consent: Consent,
        name: str = "",
        attributes: dict[str, Any] | None = None,
    ) -> PendingResult:
        """Record a double opt-in request: membership "pending" until ``confirm``.

        A new address gets a subscriber row (``name``/``attributes`` are only used
        then: an unconfirmed request never changes a known person's data). An
        active member stays active; a member who left (this list, or everything at
        once) becomes pending again, so confirming the new request brings them back.
        Pending members never receive campaigns.
        """
        normalized = normalize_address(email)
        refuse_unstorable(ImportRow(normalized, name=name, attributes=attributes or {}))
        now = utcnow()
        with self._write_with_lists() as (conn, cache):
            list_id = list_ids(conn, [list_name], now, cache)[list_name.strip()]
            subscriber_id = conn.scalar(
                select(subscribers.c.id).where(subscribers.c.email == normalized)
            )
            if subscriber_id is None:
                subscriber_id = _insert_requester(conn, normalized, name, attributes or {}, now)
            status = conn.scalar(
                select(memberships.c.status)
                .where(
                    memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id
                )
                .with_for_update()
            )
            if status == ACTIVE and _globally_active(conn, subscriber_id, normalized):
                return PendingResult(subscriber_id, list_id, ACTIVE)
            if status is None:
                conn.execute(
                    insert(memberships).values(
                        subscriber_id=subscriber_id,
                        list_id=list_id,
                        status=PENDING,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:  # pending again (renews the expiry clock) or back from unsubscribed
                self._set_membership(conn, subscriber_id, list_id, PENDING, now)
            record_consents(conn, [consent_row(subscriber_id, list_id, "subscribe", consent, now)])
            return PendingResult(subscriber_id, list_id, PENDING)

    @retry_conflicts
    def confirm(self, subscriber_id: int, list_name: str, *, consent: Consent) -> bool:
        """Turn a pending membership active (double opt-in confirmed) -> True if it changed.

        The confirmation is fresh, verified consent, so it also lifts an earlier
        global suppression of the address. Anything but "pending" is left alone.
        """
        now = utcnow()
        with self.write() as conn:
            list_id = find_list_id(conn, list_name)
            if list_id is None:
                return False
            row = conn.execute(
                select(subscribers.c.email, subscribers.c.status, memberships.c.status)
                .join(memberships, memberships.c.subscriber_id == subscribers.c.id)
                .where(subscribers.c.id == subscriber_id, memberships.c.list_id == list_id)
                .with_for_update()
            ).first()
            if row is None or row[2] != PENDING or row[0] is None:
                return False
            email, global_status = row[0], row[1]
            extra: dict[str, Any] = {}
            if global_status != ACTIVE:
                extra["lifted_suppression"] = global_status
                conn.execute(
                    update(subscribers)
                    .where(subscribers.c.id == subscriber_id)
                    .values(status=ACTIVE, updated_at=now)
                )
            lift_suppression(conn, email)
            self._set_membership(conn, subscriber_id, list_id, ACTIVE, now, confirmed=True)
            record_consents(
                conn, [consent_row(subscriber_id, list_id, "confirm", consent, now, extra)]
            )
            return True

    def expire_pending(self, older_than: datetime) -> int:
        """Forget double opt-in requests not confirmed since ``older_than`` -> how many.

        The pending memberships go; a subscriber left with no membership at all
        (someone who only ever asked and never confirmed) goes with their
        consent records, since nobody consented to keeping them.
        """
        with self.write() as conn:
            stale = select(memberships.c.subscriber_id).where(
                memberships.c.status == PENDING, memberships.c.updated_at < older_than
            )
            subscriber_ids = list(conn.scalars(stale))
            if not subscriber_ids:
                return 0
            removed = conn.execute(
                delete(memberships).where(
                    memberships.c.status == PENDING, memberships.c.updated_at < older_than
                )
            ).rowcount
            orphans = select(subscribers.c.id).where(
                subscribers.c.id.in_(subscriber_ids),
                ~exists().where(memberships.c.subscriber_id == subscribers.c.id),
            )
            orphan_ids = list(conn.scalars(orphans))
            if orphan_ids:
                conn.execute(delete(consents).where(consents.c.subscriber_id.in_(orphan_ids)))
                conn.execute(delete(subscribers).where(subscribers.c.id.in_(orphan_ids)))
            return int(removed)


def _insert_requester(
    conn: Connection, normalized: str, name: str, attributes: dict[str, Any], now: datetime
) -> int:
    """A subscriber row for a new address asking to join -> its id; a suppressed address
    keeps its suppression as its status (an erased one starts afresh)."""
    reason = conn.scalar(
        select(suppressions.c.reason).where(suppressions.c.email_hash == address_hash(normalized))
    )
    inserted: int = conn.execute(
        insert(subscribers)
        .values(
            email=normalized,
            name=name.strip(),
            attributes=attributes,
            status=ACTIVE if reason in (None, ERASED) else reason,
            created_at=now,
            updated_at=now,
        )
        .returning(subscribers.c.id)
    ).scalar_one()
    return inserted


def _globally_active(conn: Connection, subscriber_id: int, normalized: str) -> bool:
    """Whether nothing global (status or suppression entry) blocks ``subscriber_id``."""
    status = conn.scalar(select(subscribers.c.status).where(subscribers.c.id == subscriber_id))
    blocked = conn.scalar(
        select(suppressions.c.reason).where(suppressions.c.email_hash == address_hash(normalized))
    )
    return status == ACTIVE and blocked is None
