"""The delivery ledger's part in erasure and the subscriber's data export.

Importing this module registers its hooks with ``store.subscribers`` (``store``'s
package import does): an erased subscriber's rows keep that a message went out but
lose the address and the server's reply; an export lists every message sent or tried.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from newsletter.store.campaigns import campaigns
from newsletter.store.deliveries import deliveries
from newsletter.store.privacy import DESCRIBE_HOOKS, ERASE_HOOKS, iso


def _scrub_deliveries(conn: Connection, subscriber_id: int) -> None:
    """Erase hook: the ledger keeps the row (it was sent) but not the address or reply."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.subscriber_id == subscriber_id)
        .values(email=None, reply="")
    )


def _describe_deliveries(conn: Connection, subscriber_id: int) -> tuple[str, Any]:
    """Describe hook: every message sent (or tried) to the subscriber, for the export."""
    rows = conn.execute(
        select(
            campaigns.c.label,
            deliveries.c.email,
            deliveries.c.status,
            deliveries.c.sent_at,
            deliveries.c.code,
            deliveries.c.reply,
        )
        .join(campaigns, campaigns.c.id == deliveries.c.campaign_id)
        .where(deliveries.c.subscriber_id == subscriber_id)
        .order_by(deliveries.c.id)
    ).all()
    return "deliveries", [
        {
            "issue": row.label,
            "address": row.email,
            "status": row.status,
            "sent_at": iso(row.sent_at),
            "reply": f"{row.code or ''} {row.reply}".strip(),
        }
        for row in rows
    ]


if _scrub_deliveries not in ERASE_HOOKS:
    ERASE_HOOKS.append(_scrub_deliveries)
if _describe_deliveries not in DESCRIBE_HOOKS:
    DESCRIBE_HOOKS.append(_describe_deliveries)
