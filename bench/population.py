"""Bench setup shared by the scripts: many active subscribers, bulk-inserted.

Setup only (never timed as a figure): it skips the import path's checks and
writes rows straight into the tables, 20,000 per statement.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

CITIES = ("Lisbon", "Tromsø", "Kraków", "Nairobi", "Osaka", "Quito", "Perth", "Ghent")
CHUNK = 20_000


def insert_members(store: Any, count: int, list_name: str = "main") -> int:
    """Add ``count`` active members (member00000001@example.org, ...) to a new list -> its id.

    ``store`` is an open ``newsletter.store.Store`` whose database has no such list yet.
    """
    from sqlalchemy import insert

    from newsletter.store.schema import lists, memberships, subscribers

    now = datetime.now(UTC)
    with store.write() as conn:
        list_id: int = conn.execute(
            insert(lists).values(name=list_name, created_at=now).returning(lists.c.id)
        ).scalar_one()
        for start in range(0, count, CHUNK):
            ids = range(start + 1, min(start + CHUNK, count) + 1)
            conn.execute(
                insert(subscribers),
                [
                    {
                        "id": i,
                        "email": f"member{i:08d}@example.org",
                        "name": f"Member {i}",
                        "attributes": {"city": CITIES[i % len(CITIES)], "plan": "free"},
                        "status": "active",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(memberships),
                [
                    {
                        "subscriber_id": i,
                        "list_id": list_id,
                        "status": "active",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
    return list_id
