"""Engines and schema upgrades: a URL in, a ready ``Store`` out.

``open_store(url)`` creates the SQLite folder if needed, configures every
SQLite connection (WAL, busy_timeout, foreign keys, explicit transactions) and
runs the packaged Alembic migrations up to head before returning.

SQLite transactions: pysqlite's own implicit BEGIN is switched off so that
SQLAlchemy's ``begin`` decides. Reads use a plain (deferred) ``BEGIN``; writes go
through an engine with the execution option ``newsletter_write=True``
(``Store.write()``), which emits ``BEGIN IMMEDIATE``. Taking the write lock up
front means two writers (a sender and the web process) queue on
``busy_timeout`` instead of one failing with "database is locked" when it
upgrades a read transaction. Readers never wait for writers (WAL).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from newsletter.errors import StoreError
from newsletter.store.base import WRITE_OPTION
from newsletter.store.subscribers import Store
from newsletter.workspace import Workspace

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# Any constant works; two processes upgrading one PostgreSQL database take turns on it.
_PG_MIGRATION_LOCK = 7_243_001


def redact_url(url: str) -> str:
    """``url`` with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # None = autocommit at the driver level: SQLAlchemy's "begin" event emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    """SQLAlchemy URL -> Engine; SQLite files get their folder and connection settings.

    Raises StoreError for a URL that cannot be parsed or a driver that is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"database URL {url!r} cannot be parsed",
            hint="set NEWSLETTER_DATABASE_URL to e.g. sqlite:///path/newsletter.db "
            "or postgresql+psycopg://user@host/db",
        ) from None
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the database folder {folder} ({exc.strerror})",
                    hint="check NEWSLETTER_DATABASE_URL or the folder's permissions",
                ) from None
        connect_args["timeout"] = BUSY_TIMEOUT_MS / 1000
    try:
        engine = create_engine(parsed, connect_args=connect_args)
    except (ImportError, ArgumentError) as exc:
        raise StoreError(
            f"cannot use database {redact_url(url)}: {exc}",
            hint="for PostgreSQL pip install 'newsletter[postgres]' and use a "
            "postgresql+psycopg:// URL; else fix NEWSLETTER_DATABASE_URL",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine


def alembic_config() -> AlembicConfig:
    """The Alembic configuration of the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision`` (default: the newest).

    Runs in one write transaction, so two processes opening a fresh database at
    once take turns and the second finds the work done.
    """
    if revision == "head" and _stored_revision(engine) == packaged_head():
        return  # the common case, answered without importing Alembic, which is slow to load
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config()
    heads = set(ScriptDirectory.from_config(config).get_heads())
    writer = engine.execution_options(**{WRITE_OPTION: True})
    with writer.connect() as conn, _foreign_keys_off(conn), conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        current = set(MigrationContext.configure(conn).get_current_heads())
        if revision == "head" and current == heads:
            return
        config.attributes["connection"] = conn
        log.info("upgrading database schema to %s", revision)
        broken_before = _broken_references(conn)
        command.upgrade(config, revision)
        broken = _broken_references(conn) - broken_before
        if broken:  # raising rolls the whole upgrade back
            raise StoreError(
                f"the schema upgrade would break references in table {min(broken)[0]}",
                hint="the database was left as it was; report this with the newsletter version",
            )


def _broken_references(conn: Connection) -> set[tuple[Any, ...]]:
    """SQLite: every (table, rowid, parent, key) whose foreign key points at nothing."""
    if conn.dialect.name != "sqlite":
        return set()
    return {tuple(row) for row in conn.exec_driver_sql("PRAGMA foreign_key_check")}


@contextmanager
def _foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite: no foreign-key actions while migrations rebuild tables, on again after.

    Rebuilding a table drops the old one, and with enforcement on that drop deletes (by
    cascade) every row referring to it. The pragma only works outside a transaction.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def packaged_head() -> str:
    """The newest packaged migration's revision id: the versions/ file names sort in order."""
    return max(
        path.stem for path in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    )


def _stored_revision(engine: Engine) -> str | None:
    """The revision recorded in the database, or None (no table yet, or several heads)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError:
        return None
    return rows[0] if len(rows) == 1 else None


def open_store(url: str) -> Store:
    """Open (and create or upgrade) the database at ``url`` -> a ready Store.

    Raises StoreError naming the (password-free) URL when it cannot be opened.
    """
    engine = make_engine(url)
    try:
        upgrade_schema(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc)
        raise StoreError(
            f"cannot open database {redact_url(url)}: {reason.splitlines()[0]}",
            hint="check NEWSLETTER_DATABASE_URL and that the file or server is reachable",
        ) from None
    return Store(engine)


def open_store_for(workspace: Workspace) -> Store:
    """The Store of a workspace: NEWSLETTER_DATABASE_URL or subscribers/newsletter.db."""
    return open_store(workspace.database_url)
