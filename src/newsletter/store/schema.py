"""The tables of the subscriber store, declared once on a shared ``MetaData``.

Other modules add their own tables to the same ``metadata`` (for example
``store/deliveries.py`` declaring ``deliveries``) and ship a migration for them
under ``store/migrations/versions/``; migrations never import this module, so a
later change here cannot rewrite history.

Tables (every time is a timezone-aware UTC ``datetime`` in Python):

``subscribers``   one row per person: ``email`` (normalised, unique; NULL once
                  erased), ``name``, ``attributes`` (JSON object), global
                  ``status`` active | unsubscribed | bounced | complained | erased.
``lists``         named lists (``main``, ``weekly``...).
``memberships``   (subscriber, list) -> pending | active | unsubscribed, with
                  ``confirmed_at`` for double opt-in.
``consents``      the consent trail: every subscribe, confirm, unsubscribe,
                  resubscribe, import, bounce, complaint and erasure, with when,
                  how (source), IP, user agent and the consent text shown.
``suppressions``  sha256 of every globally suppressed address: the list that a
                  re-import, an ``add`` or a send can never get past.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

# Named constraints keep ALTERs (batch mode on SQLite) reproducible across databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Global subscriber status; anything but ACTIVE is a suppression that overrides every list.
ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
BOUNCED = "bounced"
COMPLAINED = "complained"
ERASED = "erased"
SUBSCRIBER_STATUSES = (ACTIVE, UNSUBSCRIBED, BOUNCED, COMPLAINED, ERASED)
SUPPRESSION_REASONS = (UNSUBSCRIBED, BOUNCED, COMPLAINED, ERASED)

# Per-list membership status.
PENDING = "pending"
MEMBERSHIP_STATUSES = (PENDING, ACTIVE, UNSUBSCRIBED)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL stores ``timestamptz``; SQLite stores the naive UTC text
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's own format, fixed width, so
    comparisons in SQL sort correctly). Naive datetimes are refused on the way
    in rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite one direct step to the stored text (bulk imports bind millions of these)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # A batch binds the same "now" thousands of times; one (value, text) tuple is
        # read and replaced atomically, so threads sharing this processor stay correct.
        last: list[tuple[Any, str | None]] = [(None, None)]

        def to_text(value: Any) -> str | None:
            seen, text = last[0]
            if value is seen and value is not None:
                return text
            utc = self.process_bind_param(value, dialect)
            text = None if utc is None else utc.isoformat(" ", "microseconds")
            last[0] = (value, text)
            return text

        return to_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """On SQLite parse the stored text straight into an aware datetime."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: Any) -> datetime | None:
            if value is None:
                return None
            return datetime.fromisoformat(value + "+00:00")

        return from_text

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        """Aware datetime -> UTC (naive for SQLite); naive input is a programming error."""
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"UtcDateTime needs a timezone-aware datetime, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Database value -> aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """A CHECK constraint's text: ``column`` is one of ``values``."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


def subscriber_ref(**options: Any) -> Column[int]:
    """The ``subscriber_id`` column of a table whose rows go when their subscriber row goes
    (``options``: nullable=, primary_key=)."""
    return Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), **options
    )


subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=True, unique=True),
    Column("name", Text, nullable=False, default=""),
    Column("attributes", JSON, nullable=False),
    Column("status", String(16), nullable=False, default=ACTIVE),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(sql_in("status", SUBSCRIBER_STATUSES), name="status"),
    Index("ix_subscribers_status_id", "status", "id"),
    # an id is never handed out twice (links and VERP addresses carry it)
    sqlite_autoincrement=True,
)

lists = Table(
    "lists",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    subscriber_ref(primary_key=True),
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("confirmed_at", UtcDateTime, nullable=True),
    CheckConstraint(sql_in("status", MEMBERSHIP_STATUSES), name="status"),
    # The sender walks one list's active members in id order: this index answers it alone.
    Index("ix_memberships_list_status_subscriber", "list_id", "status", "subscriber_id"),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True),
    subscriber_ref(nullable=True),
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="SET NULL"), nullable=True),
    Column("action", String(32), nullable=False),
    Column("source", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("ip", String(45), nullable=True),
    Column("user_agent", Text, nullable=True),
    Column("consent_text", Text, nullable=True),
    Column("consent_version", String(64), nullable=True),
    Column("detail", JSON, nullable=True),
    Index("ix_consents_subscriber_id", "subscriber_id"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    CheckConstraint(sql_in("reason", SUPPRESSION_REASONS), name="reason"),
)
