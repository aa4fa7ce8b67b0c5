"""Bounce processing on a real PostgreSQL server: portable SQL (the soft-bounce count of
distinct originals too), and the same report handled by several processes at once recorded
once (the unique report key decides the race).

Uses the throwaway cluster of test_store_postgres.py; skipped where the PostgreSQL server
binaries or psycopg are missing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from bounce_samples import BASE, IDS, KEY, fixture, soft_report, status_of
from sqlalchemy import func, select

from newsletter.audience.bounces.process import BounceSettings, MessageOutcome, process_message
from newsletter.audience.bounces.process import Result as Outcome
from newsletter.audience.importing import import_file
from newsletter.store import Store, open_store
from newsletter.store.bounce_reports import bounce_reports, soft_bounces_since
from newsletter.store.schema import consents

pytest.importorskip("psycopg")

SAMPLE_CSV = Path(__file__).resolve().parents[2] / "subscribers" / "subscribers.csv"
SETTINGS = BounceSettings(keys=(KEY,), bounce_address=BASE)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    with open_store(pg_url) as opened:
        import_file(opened, SAMPLE_CSV, list_name=None, default_list="main")
        yield opened


def test_every_fixture_applies_on_postgresql(pg_store: Store) -> None:
    for address, subscriber_id in IDS.items():
        assert pg_store.get_by_email(address).id == subscriber_id  # type: ignore[union-attr]
    names = ("hard-5.1.1.eml", "hard-no-verp.eml", "complaint-arf.eml", "forged-verp.eml")
    results = [process_message(pg_store, fixture(name), SETTINGS).result for name in names]
    assert results == [Outcome.APPLIED, Outcome.UNSIGNED, Outcome.APPLIED, Outcome.FORGED]
    trusting = replace(SETTINGS, trust_unsigned=True)
    assert process_message(pg_store, fixture("hard-no-verp.eml"), trusting).suppressed
    statuses = {address: status_of(pg_store, address) for address in IDS}
    assert Counter(statuses.values()) == Counter(bounced=2, complained=1, active=2)
    now = datetime.now(UTC)
    # two delay warnings about one message to Inés: one soft bounce, even with a limit of 2
    twice = replace(SETTINGS, soft_limit=2)
    then = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # after both warnings
    with time_machine.travel(then, tick=False):
        warnings = [
            process_message(pg_store, fixture(name), twice)
            for name in ("delayed.eml", "delayed-again.eml")
        ]
    with pg_store.read() as conn:
        ines = IDS["ines.gomez@example.com"]
        assert soft_bounces_since(conn, ines, then - timedelta(days=1), then) == 1
    assert [(o.result, o.suppressed) for o in warnings] == [(Outcome.APPLIED, False)] * 2
    assert status_of(pg_store, "ines.gomez@example.com") == "active"
    outcomes = [process_message(pg_store, soft_report(n, now), SETTINGS) for n in range(3)]
    assert [o.suppressed for o in outcomes] == [False, False, True]
    assert status_of(pg_store, "linus.t@example.org") == "bounced"


def test_the_same_report_from_several_workers_at_once_counts_once(pg_store: Store) -> None:
    data = fixture("hard-5.1.1.eml")
    barrier = threading.Barrier(4)
    outcomes: list[MessageOutcome] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            outcomes.append(process_message(pg_store, data, SETTINGS))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Counter(o.result for o in outcomes) == Counter(
        {Outcome.APPLIED: 1, Outcome.DUPLICATE: 3}
    )
    with pg_store.read() as conn:
        assert conn.scalar(select(func.count()).select_from(bounce_reports)) == 1
        bounces = conn.scalar(
            select(func.count()).select_from(consents).where(consents.c.action == "bounce")
        )
    assert bounces == 1


def test_an_unsubscribe_request_mail_from_several_workers_at_once_acts_once(
    pg_store: Store,
) -> None:
    from newsletter.audience.bounces.unsubscribe import (
        RequestResult,
        RequestSettings,
        process_request,
    )
    from newsletter.store.unsubscribe_requests import unsubscribe_requests

    settings = RequestSettings(keys=(KEY,), mailbox="unsubscribe@example.org")
    data = (
        Path(__file__).resolve().parents[1] / "fixtures" / "unsubscribe" / "mailto-token.eml"
    ).read_bytes()
    barrier = threading.Barrier(4)
    results: list[RequestResult] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            outcome = process_request(pg_store, data, settings, key="c" * 64)
            assert outcome is not None
            results.append(outcome.result)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results.count(RequestResult.BY_TOKEN) == 1
    assert set(results) <= {
        RequestResult.BY_TOKEN,
        RequestResult.UNCHANGED,
        RequestResult.DUPLICATE,
    }
    with pg_store.read() as conn:
        assert conn.scalar(select(func.count()).select_from(unsubscribe_requests)) == 1
        unsubscribes = conn.scalar(
            select(func.count()).select_from(consents).where(consents.c.action == "unsubscribe")
        )
    assert unsubscribes == 1
    grace = pg_store.get_by_email("grace.hopper@example.net")
    assert grace is not None and [m.status for m in grace.memberships] == ["unsubscribed"]
    again = process_request(pg_store, data, settings, key="c" * 64)
    assert again is not None and again.result is RequestResult.DUPLICATE
