"""``Store.iter_export_rows``: the text it hands out is exactly what the stored values
print as, on SQLite and on PostgreSQL, batch after batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from newsletter.store import Consent, Store, SubscriberSummary, open_store
from newsletter.store.exports import ExportValues

CLI = Consent(source="cli")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'n.db'}"
    else:
        pytest.importorskip("psycopg")
        url = request.getfixturevalue("pg_url")
    with open_store(url) as opened:
        yield opened


def _expected(sub: SubscriberSummary) -> ExportValues:
    attributes = json.dumps(sub.attributes, ensure_ascii=False, sort_keys=True)
    return (
        sub.id,
        sub.email,
        sub.name,
        sub.status,
        attributes if sub.attributes else "",
        sub.created_at.isoformat(),
        sub.updated_at.isoformat(),
        sub.lists,
    )


def _fill(store: Store) -> None:
    # a whole second (isoformat prints no fraction) and an odd microsecond
    for when in (datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC), datetime(2026, 3, 1, 9, 0, 0, 7, UTC)):
        with time_machine.travel(when, tick=False):
            stamp = when.microsecond
            store.add(f"plain{stamp}@example.com", list_name="main", consent=CLI)
            store.add(
                f"zoe{stamp}@example.com",
                list_name="weekly",
                consent=CLI,
                name="Zoë",
                attributes={"ville": "Kraków", "a": {"z": [1, "ü"], "b": None}, "n": 2.5},
            )
            store.add(f"zoe{stamp}@example.com", list_name="main", consent=CLI)
    store.unsubscribe("plain7@example.com", list_name="main", consent=CLI)
    store.mark_bounced("zoe0@example.com")


def test_export_text_is_what_the_stored_values_print_as(store: Store) -> None:
    _fill(store)
    expected = [_expected(sub) for sub in store.iter_summaries()]
    assert [row[0] for row in expected] == sorted(row[0] for row in expected)
    assert list(store.iter_export_rows(batch_size=3)) == expected
    assert expected[0][5] == "2026-03-01T09:00:00+00:00"
    assert expected[-1][6] == "2026-03-01T09:00:00.000007+00:00"
    filtered = [_expected(s) for s in store.iter_summaries(list_name="main", status="active")]
    assert list(store.iter_export_rows(list_name="main", status="active")) == filtered


def test_a_list_created_during_an_export_is_named(store: Store) -> None:
    for i in range(4):
        store.add(f"r{i}@example.com", list_name="main", consent=CLI)
    rows = store.iter_export_rows(batch_size=2)
    first = [next(rows), next(rows)]
    store.add("late@example.com", list_name="late", consent=CLI)
    store.add("r3@example.com", list_name="late", consent=CLI)
    rest = list(rows)
    assert [row[1] for row in first + rest] == [f"r{i}@example.com" for i in range(4)] + [
        "late@example.com"
    ]
    assert rest[1][7] == {"late": "active", "main": "active"}
    assert rest[2][7] == {"late": "active"}
