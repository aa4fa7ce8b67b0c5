"""Reading subscribers for an export, in their portable text form, a batch at a time.
A part of ``Store`` (``store.subscribers``).

``iter_export_rows`` yields ``ExportValues`` tuples: (id, email, name, global status,
attributes as JSON text, created and updated times as ISO 8601 text, {list name: status}).
The attributes text has its keys sorted and non-ASCII kept ("" for none); the times read
like ``datetime.isoformat()`` of the aware UTC value. Each batch is one keyset query run
on the driver's own cursor plus one for its memberships, so a million rows cost no
per-row SQLAlchemy work and no JSON or datetime objects that only become text again.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, Text, bindparam, cast, select, type_coerce

from newsletter.store.compiled import CompiledStatement
from newsletter.store.listing import Listing
from newsletter.store.schema import lists, memberships, subscribers

# (id, email, name, status, attributes JSON, created_at ISO, updated_at ISO, lists)
ExportValues = tuple[int, str, str, str, str, str, str, dict[str, str]]


class Exporting(Listing):
    """Streaming subscribers as text for ``audience.exporting``."""

    def iter_export_rows(
        self,
        *,
        list_name: str | None = None,
        status: str | None = None,
        batch_size: int = 5000,
    ) -> Iterator[ExportValues]:
        """Subscribers filtered like ``count``, in id order, as ``ExportValues`` (see module)."""
        with self.read() as conn:
            page, members, all_lists = _statements(
                conn, self._filtered(conn, list_name, status), batch_size
            )
        names: dict[int, str] = {}
        last = 0
        while True:
            with self.read() as conn:
                rows = _fetch(conn, page, {"last": last})
                found = _fetch(conn, members, {"lo": rows[0][0], "hi": rows[-1][0]}) if rows else []
                if any(list_id not in names for _, list_id, _ in found):
                    names = dict(_fetch(conn, all_lists, {}))
            on: dict[int, dict[str, str]] = {}
            for subscriber_id, list_id, list_status in found:
                on.setdefault(subscriber_id, {})[names[list_id]] = list_status
            for sid, email, name, state, attributes, created, updated in rows:
                member_of = on.get(sid, {})
                if len(member_of) > 1:
                    member_of = dict(sorted(member_of.items()))
                yield (
                    sid,
                    email,
                    name,
                    state,
                    attributes_text(attributes),
                    iso_text(created),
                    iso_text(updated),
                    member_of,
                )
            if len(rows) < batch_size:
                return
            last = rows[-1][0]


def _statements(
    conn: Connection, query: Select[Any], batch_size: int
) -> tuple[CompiledStatement, CompiledStatement, CompiledStatement]:
    """(one page of ``query`` past :last, the memberships of ids :lo..:hi, every list)."""
    page = (
        query.with_only_columns(
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.name,
            subscribers.c.status,
            cast(subscribers.c.attributes, Text),
            # the stored form as it comes: SQLite's text, PostgreSQL's datetime
            type_coerce(subscribers.c.created_at, Text),
            type_coerce(subscribers.c.updated_at, Text),
        )
        .where(subscribers.c.id > bindparam("last"))
        .order_by(subscribers.c.id)
        .limit(batch_size)
    )
    members = select(
        memberships.c.subscriber_id, memberships.c.list_id, memberships.c.status
    ).where(
        # an id range, not IN (thousands of ids): the primary key answers it
        memberships.c.subscriber_id.between(bindparam("lo"), bindparam("hi"))
    )
    return (
        CompiledStatement(page, conn.dialect),
        CompiledStatement(members, conn.dialect),
        CompiledStatement(select(lists.c.id, lists.c.name), conn.dialect),
    )


def _fetch(conn: Connection, statement: CompiledStatement, values: dict[str, Any]) -> list[Any]:
    """Run ``statement`` on the driver's cursor inside ``conn``'s transaction -> its rows."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement.sql, statement.params(values))
        return list(cursor.fetchall())
    finally:
        cursor.close()


@functools.lru_cache(maxsize=16384)
def attributes_text(stored: str | None) -> str:
    """Attributes as stored (JSON text) -> keys sorted, non-ASCII kept; "" when empty.

    Cached: lists repeat few attribute sets, and the answer is an immutable string.
    """
    value = json.loads(stored) if stored else None
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""


def iso_text(stored: str | datetime) -> str:
    """A stored time (SQLite's naive UTC text, or an aware datetime) -> ``isoformat()`` text
    of the aware UTC value (no fraction when it is zero, like ``isoformat``)."""
    if isinstance(stored, datetime):
        return stored.astimezone(UTC).isoformat()
    if len(stored) == 26 and stored[10] == " " and stored[19] == ".":
        end = 19 if stored.endswith(".000000") else 26
        return f"{stored[:10]}T{stored[11:end]}+00:00"
    return datetime.fromisoformat(stored + "+00:00").isoformat()
