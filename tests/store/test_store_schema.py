"""Opening the store: folder creation, SQLite settings, migrations that match the tables."""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from newsletter.errors import StoreError
from newsletter.store import Consent, Store, open_store, open_store_for
from newsletter.store.engine import make_engine, upgrade_schema
from newsletter.store.schema import metadata, subscribers
from newsletter.workspace import Workspace


def test_open_creates_folder_and_sets_sqlite_pragmas_on_every_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'news.db'}"
    with open_store(url) as store:
        assert (tmp_path / "deep" / "er" / "news.db").is_file()
        # two connections at once: both configured, not just the first one
        with store.engine.connect() as one, store.engine.connect() as two:
            for conn in (one, two):
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def _import_every_store_module() -> None:
    """Tables register on ``metadata`` when their module is imported: import them all."""
    import newsletter.store as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"newsletter.store.{module.name}")


def test_migrations_create_exactly_the_declared_tables(tmp_path: Path) -> None:
    """Fails when a module declares a table (or column, index) that no migration creates."""
    _import_every_store_module()
    with open_store(f"sqlite:///{tmp_path / 'x.db'}") as store, store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        missing = compare_metadata(context, metadata)
        assert missing == [], (
            "declared on store.schema.metadata but created by no migration; add "
            f"src/newsletter/store/migrations/versions/000N_<name>.py: {missing}"
        )
        assert context.get_current_revision() is not None


def test_reopening_keeps_data_and_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with open_store(url) as store:
        store.add("a@example.com", list_name="main", consent=Consent(source="cli"))
        with store.engine.connect() as conn:
            first = MigrationContext.configure(conn).get_current_revision()
    with open_store(url) as store:
        assert store.count() == 1
        with store.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == first


def test_first_revision_is_0001_subscribers(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'x.db'}") as store, store.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions and all(v >= "0001_subscribers" for v in versions)


def test_several_processes_opening_a_fresh_database_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def opener() -> None:
        barrier.wait()
        try:
            open_store(url).close()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with open_store(url) as store:
        assert store.count() == 0


def test_workspace_default_database_lives_in_subscribers(workspace: Workspace) -> None:
    with open_store_for(workspace) as store:
        assert store.count() == 0
    assert (workspace.subscribers_dir / "newsletter.db").is_file()


def test_environment_url_wins(workspace_dir: Path, tmp_path: Path) -> None:
    from newsletter.workspace import load_workspace

    other = tmp_path / "elsewhere" / "db.sqlite"
    ws = load_workspace(workspace_dir, {"NEWSLETTER_DATABASE_URL": f"sqlite:///{other}"})
    open_store_for(ws).close()
    assert other.is_file()
    assert not (workspace_dir / "subscribers" / "newsletter.db").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "cannot be parsed"),
        ("nosuchdb+driver://host/db", "cannot use database"),
    ],
)
def test_unusable_urls_are_store_errors(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected):
        open_store(url)


def test_unopenable_file_is_a_store_error_without_password(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(StoreError, match="cannot"):
        open_store(f"sqlite:///{blocker / 'x.db'}")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        open_store(f"sqlite:///{garbage}")


def test_times_are_aware_utc_and_naive_times_are_refused(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        store.add("a@example.com", list_name="main", consent=Consent(source="cli"))
        with store.read() as conn:
            created = conn.scalar(select(subscribers.c.created_at))
        assert created is not None and created.tzinfo is not None
        assert created.utcoffset() == timedelta(0)
        plus_two = timezone(timedelta(hours=2))
        local = datetime(2026, 1, 1, 12, 0, tzinfo=plus_two)
        with store.write() as conn:
            conn.execute(subscribers.update().values(created_at=local))
        with store.read() as conn:
            assert conn.scalar(select(subscribers.c.created_at)) == datetime(
                2026, 1, 1, 10, 0, tzinfo=UTC
            )
        with pytest.raises(Exception, match="timezone-aware"), store.write() as conn:
            conn.execute(subscribers.update().values(created_at=datetime(2026, 1, 1)))


def test_schema_compiles_for_postgresql() -> None:
    """Nothing SQLite-only in the DDL: every table and index compiles for PostgreSQL."""
    dialect = postgresql.dialect()
    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        assert "CREATE TABLE" in ddl
        for index in table.indexes:
            assert "CREATE INDEX" in str(CreateIndex(index).compile(dialect=dialect))
    assert "TIMESTAMP WITH TIME ZONE" in str(CreateTable(subscribers).compile(dialect=dialect))


def test_packaged_head_read_from_file_names_is_alembics_head() -> None:
    """open_store skips importing Alembic when the database is at this head."""
    from alembic.script import ScriptDirectory

    from newsletter.store.engine import alembic_config, packaged_head

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [packaged_head()]


def test_a_current_database_opens_without_importing_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    open_store(url).close()  # creates and migrates
    code = (
        "import sys\n"
        "from newsletter.store import open_store\n"
        f"open_store({url!r}).close()\n"
        "assert 'alembic' not in sys.modules, 'alembic was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_upgrading_an_old_database_keeps_every_row_and_never_reuses_an_id(tmp_path: Path) -> None:
    """0006 rebuilds subscribers on SQLite: memberships survive, and the id counter starts
    above the highest id any table still refers to."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade_schema(engine, "0005_bounce_originals")
    cli = Consent(source="cli")
    for n in range(3):
        Store(engine).add(f"p{n}@example.com", list_name="main", consent=cli)
    engine.dispose()
    # a plain sqlite3 connection enforces no foreign keys: leave traces of ids 3 and 9
    raw = sqlite3.connect(tmp_path / "old.db")
    with raw:
        raw.execute(
            "INSERT INTO consents (subscriber_id, action, source, at) "
            "VALUES (9, 'subscribe', 'web', '2026-01-01 00:00:00.000000')"
        )
        raw.execute("DELETE FROM memberships WHERE subscriber_id = 3")
        raw.execute("DELETE FROM subscribers WHERE id = 3")
    raw.close()
    engine.dispose()
    with open_store(url) as upgraded:
        assert upgraded.count(list_name="main", status="active") == 2
        assert upgraded.add("next@example.com", list_name="main", consent=cli) == "added"
        newcomer = upgraded.get_by_email("next@example.com")
        assert newcomer is not None and newcomer.id == 10
        with upgraded.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            # the consents of ids 3 and 9 made above, and nothing broken by the rebuild
            assert len(conn.exec_driver_sql("PRAGMA foreign_key_check").all()) == 2
