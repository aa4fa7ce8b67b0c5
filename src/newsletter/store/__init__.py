"""The subscriber store: SQLAlchemy Core over SQLite (default) or PostgreSQL.

Stable contract for the rest of the project:

- ``open_store(url) -> Store`` / ``open_store_for(workspace) -> Store`` create the
  SQLite folder if needed, set WAL, ``busy_timeout`` and foreign keys on every
  SQLite connection, and run the packaged Alembic migrations to head. Use the
  Store as a context manager (or call ``close()``).
- ``Store.write()`` is a write transaction (``BEGIN IMMEDIATE`` on SQLite, so a
  sender and the web process queue instead of failing); ``Store.read()`` a read
  connection. Other modules (campaigns, deliveries, schedules) use these with their own
  tables, declared on ``store.schema.metadata`` in their own module.
- Adding a table: declare it on ``schema.metadata`` in your module, then add
  ``migrations/versions/000N_<name>.py`` with ``revision = "000N_<name>"`` and
  ``down_revision`` = the previous id (``"0001_subscribers"`` first). Write the
  ``op.create_table`` by hand (or autogenerate with ``alembic -x url=...``),
  with ``sa.DateTime(timezone=True)`` for ``UtcDateTime`` columns.
  ``tests/test_store_schema.py`` fails while a declared table has no migration.
- Nothing SQLite-only: portable SQL only (no ON CONFLICT, no JSON operators).
- Every time in and out is a timezone-aware UTC datetime.

Addresses are normalised to lower case (``addresses.py``); the suppression list
keys on ``sha256(normalised address)`` so an erased address stays blocked.
"""

# bounce reports (they quote the address) and the delivery ledger keep addresses too:
# importing them registers their erase hooks
from newsletter.store import bounce_reports as _bounce_reports  # noqa: F401
from newsletter.store import ledger_privacy as _ledger_privacy  # noqa: F401
from newsletter.store import senders as _senders  # noqa: F401
from newsletter.store.addresses import address_hash, normalize_address
from newsletter.store.engine import open_store, open_store_for, upgrade_schema
from newsletter.store.privacy import ERASE_HOOKS
from newsletter.store.records import (
    BatchResult,
    Consent,
    ImportRow,
    Membership,
    Recipient,
    Subscriber,
    SubscriberSummary,
    utcnow,
)
from newsletter.store.subscribers import Store
from newsletter.store.subscribing import PendingResult

__all__ = [
    "ERASE_HOOKS",
    "BatchResult",
    "Consent",
    "ImportRow",
    "Membership",
    "PendingResult",
    "Recipient",
    "Store",
    "Subscriber",
    "SubscriberSummary",
    "address_hash",
    "normalize_address",
    "open_store",
    "open_store_for",
    "upgrade_schema",
    "utcnow",
]
