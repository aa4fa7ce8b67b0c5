"""The one lease (store/lease.py), read and let go the way campaigns and schedules use it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.store import Store, open_store
from newsletter.store.lease import RUNNING, read_lease, release, take
from newsletter.store.schedules import SCHEDULE_LEASE, SCHEDULED, add_schedule

NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'lease.db'}") as opened:
        yield opened


def _schedule(store: Store) -> int:
    added = add_schedule(store, issue_dir="issues/a", list_name="main", due_at=NOW, zone="UTC")
    return added.id


def test_a_fresh_holder_of_this_host_keeps_its_lease_until_it_goes_stale(store: Store) -> None:
    row_id = _schedule(store)
    with store.write() as conn:
        assert take(conn, SCHEDULE_LEASE, row_id, "elsewhere:1:1", NOW, where=[])
        fresh = read_lease(conn, SCHEDULE_LEASE, row_id, NOW - timedelta(minutes=1))
        stale = read_lease(conn, SCHEDULE_LEASE, row_id, NOW + timedelta(minutes=1))
        missing = read_lease(conn, SCHEDULE_LEASE, row_id + 1, NOW)
    assert fresh is not None and stale is not None and missing is None
    assert fresh.state == RUNNING and fresh.holder == "elsewhere:1:1"
    assert fresh.held_elsewhere("here:2:2") and not fresh.held_elsewhere("elsewhere:1:1")
    assert not stale.held_elsewhere("here:2:2")


def test_a_take_on_a_stale_reading_loses_to_the_one_that_changed_the_row(store: Store) -> None:
    row_id = _schedule(store)
    with store.write() as conn:
        reading = read_lease(conn, SCHEDULE_LEASE, row_id, NOW)
        assert reading is not None
        where = reading.unchanged(SCHEDULE_LEASE)
        assert take(conn, SCHEDULE_LEASE, row_id, "first:1:1", NOW, where=where)
        assert not take(conn, SCHEDULE_LEASE, row_id, "second:2:2", NOW, where=where)


def test_release_only_by_the_holder_clears_it_and_sets_the_state(store: Store) -> None:
    row_id = _schedule(store)
    with store.write() as conn:
        take(conn, SCHEDULE_LEASE, row_id, "first:1:1", NOW, where=[])
        assert not release(conn, SCHEDULE_LEASE, row_id, "other:2:2", SCHEDULED, note="x")
        assert release(conn, SCHEDULE_LEASE, row_id, "first:1:1", SCHEDULED, note="back")
        reading = read_lease(conn, SCHEDULE_LEASE, row_id, NOW)
    assert reading is not None and (reading.state, reading.holder) == (SCHEDULED, None)
