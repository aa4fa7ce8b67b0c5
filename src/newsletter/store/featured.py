"""The ``featured_articles`` table: what each issue featured, so no article comes twice.

One row per (issue, kind, value): ``kind`` is ``url`` (the canonical URL), ``guid``
(a feed entry's id) or ``title`` (the folded title); ``value`` is the key itself. Rows
are written when an issue folder is written, and read back by every later selection,
so dedupe holds when an issue folder is edited or deleted afterwards. Recording the
same issue again adds nothing (the three columns are unique together).

Functions here take a ``Store`` and commit before they return.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from newsletter.store.records import utcnow
from newsletter.store.schema import UtcDateTime, metadata
from newsletter.store.subscribers import Store

KINDS = ("url", "guid", "title")
VALUE_MAX = 1000

featured_articles = Table(
    "featured_articles",
    metadata,
    Column("id", Integer, primary_key=True),
    # the issue folder as compose.folder.issue_key names it
    Column("issue_key", Text, nullable=False),
    # the issue's own date (YYYY-MM-DD): what ``--since last`` counts from
    Column("issue_date", String(10), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("value", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    UniqueConstraint("kind", "value", "issue_key"),
)


def _split(key: str) -> tuple[str, str]:
    """``"url:https://…"`` -> ("url", "https://…")."""
    kind, _, value = key.partition(":")
    if kind not in KINDS or not value:
        raise ValueError(f"not a featured-article key: {key!r}")
    return kind, value[:VALUE_MAX]


def record_featured(
    store: Store,
    issue_key: str,
    issue_date: str,
    keys: Iterable[str],
    *,
    now: datetime | None = None,
) -> int:
    """Record that issue ``issue_key`` (dated ``issue_date``) featured ``keys`` (each
    ``kind:value``) -> how many rows were new. Keys already recorded for it are skipped."""
    try:
        with store.write() as conn:
            return add_featured(conn, issue_key, issue_date, keys, now=now)
    except IntegrityError:
        # another process recorded the same issue at the same moment: its rows stand
        return 0


def add_featured(
    conn: Connection,
    issue_key: str,
    issue_date: str,
    keys: Iterable[str],
    *,
    now: datetime | None = None,
) -> int:
    """``record_featured`` inside the caller's transaction ``conn`` (so it commits with
    the caller's other writes) -> how many rows were new."""
    wanted = {_split(key) for key in keys}
    if not wanted:
        return 0
    rows_now = conn.execute(
        select(featured_articles.c.kind, featured_articles.c.value).where(
            featured_articles.c.issue_key == issue_key
        )
    )
    have = {(row.kind, row.value) for row in rows_now}
    rows = [
        {
            "issue_key": issue_key,
            "issue_date": issue_date,
            "kind": kind,
            "value": value,
            "recorded_at": now or utcnow(),
        }
        for kind, value in sorted(wanted - have)
    ]
    if rows:
        conn.execute(insert(featured_articles), rows)
    return len(rows)


def forget_featured(store: Store, issue_key: str) -> int:
    """Drop what issue ``issue_key`` was recorded as featuring (an issue that was never
    written) -> how many rows went."""
    with store.write() as conn:
        gone = conn.execute(
            delete(featured_articles).where(featured_articles.c.issue_key == issue_key)
        ).rowcount
    return int(gone or 0)


def featured_keys(store: Store) -> set[str]:
    """Every key featured by any issue so far, as ``kind:value``."""
    with store.read() as conn:
        rows = conn.execute(select(featured_articles.c.kind, featured_articles.c.value).distinct())
        return {f"{row.kind}:{row.value}" for row in rows}


def recorded_issues(store: Store) -> set[str]:
    """The issue keys with at least one recorded row."""
    with store.read() as conn:
        return set(conn.scalars(select(featured_articles.c.issue_key).distinct()))


def last_issue_date(store: Store) -> str | None:
    """The newest issue date recorded (YYYY-MM-DD), or None before the first issue."""
    with store.read() as conn:
        found: str | None = conn.scalar(select(func.max(featured_articles.c.issue_date)))
    return found
