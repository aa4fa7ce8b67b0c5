"""``Store.count`` on a list: the same answer as walking the members, on SQLite and
PostgreSQL, and on SQLite from indexes alone (no member's subscriber row is read)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update

from newsletter.store import Consent, Store, open_store
from newsletter.store.schema import MEMBERSHIP_STATUSES, SUBSCRIBER_STATUSES, subscribers

CLI = Consent(source="cli")
STATUSES = (None, *dict.fromkeys((*SUBSCRIBER_STATUSES, *MEMBERSHIP_STATUSES)))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'n.db'}"
    else:
        pytest.importorskip("psycopg")
        url = request.getfixturevalue("pg_url")
    with open_store(url) as opened:
        yield opened


def _every_state(store: Store) -> None:
    """People in every global and per-list state, on two lists."""
    for i in range(12):
        store.add(f"p{i}@example.com", list_name="main", consent=CLI)
        if i % 2:
            store.add(f"p{i}@example.com", list_name="weekly", consent=CLI)
    store.add_pending("wait@example.com", list_name="main", consent=CLI)
    store.add_pending("p2@example.com", list_name="weekly", consent=CLI)
    store.unsubscribe("p1@example.com", list_name="main", consent=CLI)
    store.unsubscribe("p3@example.com", consent=CLI)
    store.mark_bounced("p4@example.com")
    store.mark_bounced("p5@example.com")
    store.mark_complained("p6@example.com")
    store.erase("p7@example.com", consent=CLI)
    store.erase("p8@example.com", consent=CLI)
    # a global status set while a membership stayed active (the global one still wins)
    with store.write() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email.in_(["p9@example.com", "p10@example.com"]))
            .values(status="complained")
        )


def _walked(store: Store, list_name: str, status: str | None) -> int:
    subs = store.iter_subscribers(list_name=list_name)
    return sum(1 for s in subs if status is None or s.list_status(list_name) == status)


def test_count_on_a_list_is_the_number_of_members_walked(store: Store) -> None:
    _every_state(store)
    for list_name in ("main", "weekly"):
        for status in STATUSES:
            assert store.count(list_name=list_name, status=status) == _walked(
                store, list_name, status
            ), (list_name, status)
    assert store.count(list_name="main", status="active") == 3
    assert store.count(list_name="main", status="complained") == 3
    assert store.count(list_name="main", status="unsubscribed") == 2


def test_count_on_a_list_reads_no_members_subscriber_row(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'n.db'}") as store:
        _every_state(store)
        statements: list[tuple[str, Any]] = []

        def seen(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
            if sql.lstrip().upper().startswith("SELECT COUNT"):
                statements.append((sql, params))

        event.listen(store.engine, "before_cursor_execute", seen)
        for status in STATUSES:
            store.count(list_name="main", status=status)
        event.remove(store.engine, "before_cursor_execute", seen)
        assert statements
        with store.read() as conn:
            for sql, params in statements:
                plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
                assert not any(step.startswith("SCAN") for step in plan), plan
                assert not any("subscribers USING INTEGER PRIMARY KEY" in s for s in plan), plan
