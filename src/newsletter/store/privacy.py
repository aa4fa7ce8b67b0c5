"""Privacy: everything held about one address (the data-subject export) and erasure.
A part of ``Store`` (``store.subscribers``); other modules that keep personal data
register their own part in ``ERASE_HOOKS`` and ``DESCRIBE_HOOKS``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from newsletter.store.addresses import address_hash, normalize_address
from newsletter.store.base import StoreBase, retry_conflicts
from newsletter.store.ops import add_suppression, consent_row, record_consents
from newsletter.store.records import Consent, Subscriber, utcnow
from newsletter.store.schema import (
    ERASED,
    consents,
    lists,
    memberships,
    subscribers,
    suppressions,
)

# Called inside erase()'s transaction with (connection, subscriber id): modules that keep
# their own copy of personal data (deliveries, ...) register a scrubber here.
ERASE_HOOKS: list[Callable[[Connection, int], None]] = []

# Called inside describe()'s read with (connection, subscriber id) -> (key, JSON-ready
# value): the same modules add what they hold to the data-subject export.
DESCRIBE_HOOKS: list[Callable[[Connection, int], tuple[str, Any]]] = []


class Privacy(StoreBase):
    """The export of one person's data, and its erasure."""

    def describe(self, email: str) -> dict[str, Any] | None:
        """Everything held about ``email`` as JSON-ready data (data-subject export), or None.

        An erased or never-known but suppressed address yields only its
        suppression entry: the hash is all that is kept.
        """
        normalized = normalize_address(email)
        with self.read() as conn:
            suppression = conn.execute(
                select(suppressions.c.reason, suppressions.c.at).where(
                    suppressions.c.email_hash == address_hash(normalized)
                )
            ).first()
            sub = self._load(conn, subscribers.c.email == normalized)
            history = [] if sub is None else _consent_history(conn, sub.id)
            held = [] if sub is None else [hook(conn, sub.id) for hook in DESCRIBE_HOOKS]
        if sub is None and suppression is None:
            return None
        data: dict[str, Any] = {"email": normalized}
        if sub is not None:
            data.update(_subscriber_data(sub))
            data["consents"] = history
            data.update(held)
        else:
            data["note"] = "no personal data held; only the address hash is kept to block it"
        data["suppression"] = (
            None
            if suppression is None
            else {"reason": suppression.reason, "at": suppression.at.isoformat()}
        )
        return data

    @retry_conflicts
    def erase(self, email: str, *, consent: Consent) -> bool:
        """Erase ``email``'s personal data, keeping only its hash on the suppression list.

        The subscriber row stays as an anonymous tombstone (status "erased", no
        address, name or attributes) so ids other tables refer to stay valid;
        memberships and the consent trail go, replaced by one "erase" record
        without IP or user agent. ``ERASE_HOOKS`` scrub other modules' copies.
        Returns True if a subscriber record was erased (the address is blocked
        either way).
        """
        normalized = normalize_address(email)
        now = utcnow()
        with self.write() as conn:
            add_suppression(conn, normalized, ERASED, now)
            subscriber_id = conn.scalar(
                select(subscribers.c.id).where(subscribers.c.email == normalized)
            )
            if subscriber_id is None:
                return False
            for hook in ERASE_HOOKS:
                hook(conn, subscriber_id)
            conn.execute(delete(memberships).where(memberships.c.subscriber_id == subscriber_id))
            conn.execute(delete(consents).where(consents.c.subscriber_id == subscriber_id))
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(email=None, name="", attributes={}, status=ERASED, updated_at=now)
            )
            anonymous = Consent(source=consent.source)
            record_consents(conn, [consent_row(subscriber_id, None, "erase", anonymous, now)])
            return True


def iso(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 text (None stays None), for JSON exports."""
    return None if value is None else value.isoformat()


def _subscriber_data(sub: Subscriber) -> dict[str, Any]:
    return {
        "id": sub.id,
        "name": sub.name,
        "attributes": sub.attributes,
        "status": sub.effective_status,
        "created_at": iso(sub.created_at),
        "updated_at": iso(sub.updated_at),
        "lists": [
            {
                "list": m.list_name,
                "status": m.status,
                "created_at": iso(m.created_at),
                "updated_at": iso(m.updated_at),
                "confirmed_at": iso(m.confirmed_at),
            }
            for m in sub.memberships
        ],
    }


def _consent_history(conn: Connection, subscriber_id: int) -> list[dict[str, Any]]:
    found = conn.execute(
        select(consents, lists.c.name.label("list_name"))
        .outerjoin(lists, lists.c.id == consents.c.list_id)
        .where(consents.c.subscriber_id == subscriber_id)
        .order_by(consents.c.id)
    )
    return [
        {
            "at": iso(row.at),
            "action": row.action,
            "list": row.list_name,
            "source": row.source,
            "ip": row.ip,
            "user_agent": row.user_agent,
            "consent_text": row.consent_text,
            "consent_version": row.consent_version,
            "detail": row.detail,
        }
        for row in found
    ]
