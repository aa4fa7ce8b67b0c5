"""The same store on a real PostgreSQL server: nothing in the schema or queries is SQLite-only.

The throwaway cluster is ``pg_server`` in conftest.py (``initdb`` in a temporary
folder, its Unix socket only). Skipped where PostgreSQL's server binaries or
the psycopg driver are not installed.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select

from newsletter.audience.exporting import export_file
from newsletter.audience.importing import import_file
from newsletter.errors import StoreError
from newsletter.store import Consent, Store, open_store
from newsletter.store.schema import consents, metadata

pytest.importorskip("psycopg")

CSV_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
CLI = Consent(source="cli")


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    with open_store(pg_url) as opened:
        yield opened


def test_migrations_match_the_tables_on_postgresql(store: Store) -> None:
    import newsletter.store as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"newsletter.store.{module.name}")
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def _everything(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.read() as conn:
        return {
            table.name: sorted(
                (tuple(row) for row in conn.execute(select(table))), key=lambda r: repr(r)
            )
            for table in metadata.sorted_tables
        }


def test_imports_suppression_and_round_trip_on_postgresql(store: Store, tmp_path: Path) -> None:
    for name in ("generic.csv", "mailchimp_subscribed.csv", "substack.csv", "messy.csv"):
        import_file(store, CSV_DIR / name, list_name=None, default_list="main")
    report = import_file(store, CSV_DIR / "listmonk.csv", list_name="weekly", default_list="main")
    assert report.invalid[0][0] == 4
    import_file(store, CSV_DIR / "mailchimp_unsubscribed.csv", list_name=None, default_list="main")
    store.unsubscribe("marta.ruiz@example.com", list_name="main", consent=CLI)
    store.mark_complained("tomasz.nowak@example.pl")
    store.add_pending("pending@example.com", list_name="weekly", consent=CLI)
    store.erase("valid.two@example.com", consent=CLI)
    assert store.add("valid.two@example.com", list_name="main", consent=CLI) == "suppressed"
    again = import_file(store, CSV_DIR / "generic.csv", list_name=None, default_list="main")
    assert (again.counts.added, again.counts.suppressed) == (0, 2)
    path = tmp_path / "export.csv"
    written = export_file(store, path)
    before = _everything(store)
    report = import_file(store, path, list_name=None, default_list="main")
    assert report.counts.unchanged + report.counts.suppressed == written
    assert _everything(store) == before


def test_recipients_pending_and_counts_on_postgresql(store: Store) -> None:
    for i in range(5):
        store.add(f"r{i}@example.com", list_name="main", consent=CLI, attributes={"n": i})
    ids = [sub.id for sub in store.iter_subscribers()]
    store.unsubscribe(ids[1], consent=CLI)
    store.mark_bounced(ids[2])
    pending = store.add_pending("p@example.com", list_name="main", consent=CLI)
    assert [r.id for r in store.iter_recipients("main", batch_size=2)] == [ids[0], ids[3], ids[4]]
    assert store.sendable_ids([*ids, pending.subscriber_id], "main") == {ids[0], ids[3], ids[4]}
    assert store.confirm(pending.subscriber_id, "main", consent=CLI)
    assert store.is_sendable(pending.subscriber_id, "main")
    assert store.count(list_name="main", status="active") == 4
    assert store.count(status="bounced") == 1
    sub = store.get(ids[4])
    assert sub is not None and sub.attributes == {"n": 4}
    assert sub.created_at.utcoffset() is not None


def test_concurrent_writers_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """Two importers add the same new addresses to a new list at once; one unsubscribe event."""
    path = tmp_path / "same.csv"
    path.write_text(
        "email,name\n" + "".join(f"same{i}@example.com,S {i}\n" for i in range(300)),
        encoding="utf-8",
    )
    stores = [open_store(pg_url), open_store(pg_url)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def importer(store: Store) -> None:
        start.wait()
        try:
            import_file(store, path, list_name="fresh", default_list="main", batch_size=50)
            store.unsubscribe("same7@example.com", consent=CLI)
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=importer, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = stores[0]
    assert check.count(list_name="fresh") == 300
    assert check.count(list_name="fresh", status="active") == 299
    with check.read() as conn:
        unsubscribes = conn.scalar(select(func.count()).where(consents.c.action == "unsubscribe"))
    assert unsubscribes == 1
    for store in stores:
        store.close()


def test_a_nul_byte_is_a_bad_row_by_its_own_line_on_postgresql(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "nul.csv"
    path.write_text(
        "email,name\na@example.com,Ann\nb@example.com,B\x00b\nc@example.com,Cy\n", encoding="utf-8"
    )
    report = import_file(store, path, list_name=None, default_list="main", batch_size=10)
    assert report.invalid == [(3, "name contains a NUL character")]
    assert store.count() == 2
    with pytest.raises(StoreError, match=r"^name contains a NUL character"):
        store.add("d@example.com", list_name="main", consent=CLI, name="D\x00")
