"""Small SQL building blocks shared by ``Store`` and the bulk import.

Every function takes an open ``Connection`` inside the caller's transaction and
commits nothing itself, so a caller composes several into one atomic change.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Table,
    any_,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)

from newsletter.errors import StoreError
from newsletter.store import bulk_copy
from newsletter.store.addresses import address_hash
from newsletter.store.compiled import CompiledStatement
from newsletter.store.records import Consent, first_unstorable, surely_storable
from newsletter.store.schema import (
    ACTIVE,
    BOUNCED,
    COMPLAINED,
    ERASED,
    UNSUBSCRIBED,
    consents,
    lists,
    memberships,
    subscribers,
    suppressions,
)

# A stronger suppression replaces a weaker one, never the other way round.
STRENGTH = {ACTIVE: 0, UNSUBSCRIBED: 1, BOUNCED: 2, COMPLAINED: 3, ERASED: 4}
# The consent-trail action recorded for each kind of global suppression.
SUPPRESS_ACTION = {UNSUBSCRIBED: "unsubscribe", BOUNCED: "bounce", COMPLAINED: "complaint"}

_LIST_NAME = re.compile(r"^[^\s;,][^;,\x00-\x1f]{0,99}$")


def validate_list_name(name: str) -> str:
    """A list name as given -> stripped name, or raise StoreError (1-100 chars, no ; or ,)."""
    stripped = name.strip()
    if not _LIST_NAME.match(stripped):
        raise StoreError(
            f"list name {name!r} is not usable",
            hint="use 1-100 characters without ';', ',' or line breaks, e.g. 'main'",
        )
    return stripped


def list_ids(
    conn: Connection, names: Iterable[str], now: datetime, cache: dict[str, int]
) -> dict[str, int]:
    """Ids of the named lists, creating the missing ones; ``cache`` remembers ids between calls."""
    wanted = {validate_list_name(name) for name in names}
    missing = [name for name in wanted if name not in cache]
    if missing:
        found = conn.execute(select(lists.c.name, lists.c.id).where(lists.c.name.in_(missing)))
        cache.update({name: list_id for name, list_id in found})
        new = [name for name in missing if name not in cache]
        if new:
            conn.execute(insert(lists), [{"name": name, "created_at": now} for name in new])
            found = conn.execute(select(lists.c.name, lists.c.id).where(lists.c.name.in_(new)))
            cache.update({name: list_id for name, list_id in found})
    return {name: cache[name] for name in wanted}


def find_list_id(conn: Connection, name: str) -> int | None:
    """Id of list ``name``, or None when there is no such list."""
    return conn.scalar(select(lists.c.id).where(lists.c.name == name.strip()))


def consent_row(
    subscriber_id: int | None,
    list_id: int | None,
    action: str,
    consent: Consent,
    now: datetime,
    extra: dict[str, Any] | None = None,
    *,
    check: bool = True,
) -> dict[str, Any]:
    """One ``consents`` row as a dict for insert (``extra`` joins ``consent.detail``).

    Raises StoreError naming a field no database would store (a NUL, say); with
    ``check=False`` the caller promises ``refuse_unstorable_consents`` over its rows.
    """
    detail = {**(consent.detail or {}), **(extra or {})}
    row = {
        "subscriber_id": subscriber_id,
        "list_id": list_id,
        "action": action,
        "source": consent.source,
        "at": now,
        "ip": consent.ip,
        "user_agent": consent.user_agent,
        "consent_text": consent.text,
        "consent_version": consent.version,
        "detail": detail or None,
    }
    if check:
        refuse_unstorable_consents([row])
    return row


# The fields of a consent row whose values come from outside (ids, times, action and source
# are ours): checking only them spares encoding a thousand datetimes per batch.
_OUTSIDE_FIELDS = operator.itemgetter(
    "ip", "user_agent", "consent_text", "consent_version", "detail"
)


def refuse_unstorable_consents(rows: list[dict[str, Any]]) -> None:
    """StoreError naming the first field of ``rows`` (``consent_row`` dicts) no database
    would store; one pass over all of them when every value is fine."""
    if surely_storable(list(map(_OUTSIDE_FIELDS, rows))):
        return
    for row in rows:
        problem = first_unstorable(
            {
                "IP address": row["ip"],
                "user agent": row["user_agent"],
                "consent text": row["consent_text"],
                "consent version": row["consent_version"],
                "consent detail": row["detail"] or {},
            }
        )
        if problem is not None:
            raise StoreError(
                f"{problem[0]} {problem[1]}", hint="remove the character and try again"
            )


def among(
    conn: Connection, column: ColumnElement[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """``column IN values`` for a batch's thousand keys; on PostgreSQL ``= ANY`` of one array
    parameter, a short statement the driver parses once instead of one per batch."""
    if conn.dialect.name == "postgresql":
        return column == any_(literal(list(values), ARRAY(column.type)))
    return column.in_(list(values))


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` as one executemany.

    Same SQL and the same column types as ``conn.execute(insert(table), rows)``, minus
    SQLAlchemy's per-row parameter bookkeeping, which dominated imports.
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        bulk_copy.copy_rows(conn, table, rows)
        return
    statement = _insert_statement(conn.dialect, table, tuple(rows[0]))
    conn.exec_driver_sql(statement.sql, statement.many(rows))


# Fewer rows than this go as one executemany: COPY's set-up costs more than it saves there.
COPY_FROM_ROWS = 50


@functools.lru_cache(maxsize=64)
def _insert_statement(dialect: Any, table: Table, keys: tuple[str, ...]) -> CompiledStatement:
    """The INSERT of ``keys`` into ``table`` compiled for ``dialect``, once per process."""
    # inline(): no RETURNING of the new primary key (PostgreSQL would add it)
    return CompiledStatement(insert(table).inline(), dialect, column_keys=list(keys))


def record_consents(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert consent rows (nothing when ``rows`` is empty)."""
    bulk_insert(conn, consents, rows)


def suppression_reasons(conn: Connection, emails: Iterable[str]) -> dict[str, str]:
    """Normalised address -> suppression reason, for those of ``emails`` on the suppression list."""
    by_hash = {address_hash(email): email for email in emails}
    if not by_hash:
        return {}
    if conn.dialect.name == "postgresql":
        # hex digests, so one comma-joined text: the driver quotes an array of long strings
        # element by element, which cost ten times the lookup itself
        wanted = func.string_to_array(literal(",".join(by_hash)), literal_column("','"))
        condition = suppressions.c.email_hash == any_(wanted)
    else:
        condition = suppressions.c.email_hash.in_(list(by_hash))
    found = conn.execute(select(suppressions.c.email_hash, suppressions.c.reason).where(condition))
    return {by_hash[digest]: reason for digest, reason in found}


def add_suppression(conn: Connection, email: str, reason: str, now: datetime) -> bool:
    """Put ``email`` on the suppression list (or strengthen its reason) -> True if changed."""
    digest = address_hash(email)
    current = conn.scalar(
        select(suppressions.c.reason).where(suppressions.c.email_hash == digest).with_for_update()
    )
    if current is None:
        conn.execute(insert(suppressions).values(email_hash=digest, reason=reason, at=now))
        return True
    if STRENGTH[reason] > STRENGTH[current]:
        conn.execute(
            update(suppressions)
            .where(suppressions.c.email_hash == digest)
            .values(reason=reason, at=now)
        )
        return True
    return False


def lift_suppression(conn: Connection, email: str) -> None:
    """Take ``email`` off the suppression list (only after explicit new consent)."""
    conn.execute(delete(suppressions).where(suppressions.c.email_hash == address_hash(email)))


def suppress_subscriber(
    conn: Connection, subscriber_id: int, email: str, reason: str, now: datetime
) -> bool:
    """Globally suppress one subscriber: status, every membership, suppression list.

    Returns True when anything changed (an already suppressed subscriber stays
    as it is unless ``reason`` is stronger, e.g. a complaint after an unsubscribe).
    """
    # FOR UPDATE: on PostgreSQL two simultaneous unsubscribes take turns, so one records it
    current = conn.scalar(
        select(subscribers.c.status).where(subscribers.c.id == subscriber_id).with_for_update()
    )
    changed = False
    if current is not None and STRENGTH[reason] > STRENGTH[current]:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(status=reason, updated_at=now)
        )
        changed = True
    result = conn.execute(
        update(memberships)
        .where(memberships.c.subscriber_id == subscriber_id, memberships.c.status != UNSUBSCRIBED)
        .values(status=UNSUBSCRIBED, updated_at=now)
    )
    changed = result.rowcount > 0 or changed
    return add_suppression(conn, email, reason, now) or changed


def tally(
    conn: Connection, column: ColumnElement[Any], keys: Iterable[str], *where: Any
) -> dict[str, int]:
    """Rows per value of ``column`` among the rows ``where`` selects -> {key: count} for
    every one of ``keys`` (0 when none)."""
    query = select(column, func.count()).where(*where).group_by(column)
    found: dict[str, int] = dict(conn.execute(query).all())
    return {key: int(found.get(key, 0)) for key in keys}
