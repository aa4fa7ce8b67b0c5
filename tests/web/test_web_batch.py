"""Unsubscribes that arrive together share one transaction: the batcher, the store's
batch leave, and many one-click POSTs at once over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import anyio.to_thread
import httpx
import pytest

from newsletter.mail.tokens import make_unsubscribe_token
from newsletter.store import Consent, Store, open_store_for
from newsletter.web.batch import Batcher
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _blocking_run(
    fail_on: int | None = None,
) -> tuple[list[list[int]], threading.Event, threading.Event, object]:
    """A batch function whose first call waits for ``release``; it raises for ``fail_on``."""
    calls: list[list[int]] = []
    entered = threading.Event()
    release = threading.Event()

    def run(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            entered.set()
            assert release.wait(10)
        if fail_on in items:
            raise ValueError(f"item {fail_on} is bad")
        return [item * 10 for item in items]

    return calls, entered, release, run


async def _first_then_rest(
    batcher: Batcher[int, int], entered: threading.Event, release: threading.Event, rest: list[int]
) -> list[object]:
    """Submit 1; while its batch runs, submit ``rest``; then let the first batch end."""
    first = asyncio.create_task(batcher.submit(1))
    assert await anyio.to_thread.run_sync(entered.wait, 10)
    others = [asyncio.create_task(batcher.submit(item)) for item in rest]
    await asyncio.sleep(0)  # one turn of the loop: every task has queued its item
    release.set()
    return await asyncio.gather(first, *others, return_exceptions=True)


def test_items_arriving_while_a_batch_runs_go_together_in_the_next() -> None:
    calls, entered, release, run = _blocking_run()
    batcher: Batcher[int, int] = Batcher(run)  # type: ignore[arg-type]
    results = asyncio.run(_first_then_rest(batcher, entered, release, [2, 3, 4]))
    assert results == [10, 20, 30, 40]
    assert calls == [[1], [2, 3, 4]]


def test_a_failing_item_fails_only_its_own_request() -> None:
    calls, entered, release, run = _blocking_run(fail_on=3)
    batcher: Batcher[int, int] = Batcher(run)  # type: ignore[arg-type]
    results = asyncio.run(_first_then_rest(batcher, entered, release, [2, 3, 4]))
    assert results[:2] == [10, 20] and results[3] == 40
    assert isinstance(results[2], ValueError)
    assert calls == [[1], [2, 3, 4], [2], [3], [4]]


def test_a_waiter_gone_before_its_batch_ends_leaves_the_others_their_results() -> None:
    calls, entered, release, run = _blocking_run()
    batcher: Batcher[int, int] = Batcher(run)  # type: ignore[arg-type]

    async def scenario() -> list[object]:
        first = asyncio.create_task(batcher.submit(1))
        assert await anyio.to_thread.run_sync(entered.wait, 10)
        gone = asyncio.create_task(batcher.submit(2))
        kept = asyncio.create_task(batcher.submit(3))
        await asyncio.sleep(0)
        gone.cancel()  # its client went away: its item still runs, nobody hears of it
        release.set()
        return await asyncio.gather(first, gone, kept, return_exceptions=True)

    first, gone, kept = asyncio.run(scenario())
    assert (first, kept) == (10, 30) and isinstance(gone, asyncio.CancelledError)
    assert calls == [[1], [2, 3]]
    batcher.close()  # the threads go; a later item gets new ones
    assert asyncio.run(batcher.submit(4)) == 40


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    with open_store_for(workspace) as opened:
        yield opened


def _members(store: Store, count: int) -> list[int]:
    for n in range(count):
        store.add(f"reader{n}@example.org", list_name="main", consent=Consent(source="cli"))
    found = [store.get_by_email(f"reader{n}@example.org") for n in range(count)]
    return [s.id for s in found if s is not None]


def _unsubscribe_consents(store: Store, address: str) -> int:
    data = store.describe(address)
    assert data is not None
    return sum(1 for c in data["consents"] if c["action"] == "unsubscribe")


def test_leave_changes_each_member_once_in_one_transaction(store: Store) -> None:
    ids = _members(store, 3)
    list_id = store.list_id("main")
    assert list_id is not None
    web = Consent(source="web")
    with store.write() as conn:
        found = store.list_members(conn, ids, lock=True)
        wishes = [(found[(sid, list_id)], web) for sid in (ids[0], ids[1], ids[0])]
        changed = store.leave(conn, wishes)
    assert changed == [True, True, False]
    assert set(store.sendable_ids(ids, "main")) == {ids[2]}
    assert _unsubscribe_consents(store, "reader0@example.org") == 1
    assert _unsubscribe_consents(store, "reader1@example.org") == 1
    with store.read() as conn:
        again = store.list_members(conn, ids)
    assert again[(ids[0], list_id)].has_left and not again[(ids[2], list_id)].has_left
    with store.write() as conn:  # someone already off the list changes nothing
        assert store.leave(conn, [(again[(ids[0], list_id)], web)]) == [False]
    assert _unsubscribe_consents(store, "reader0@example.org") == 1


def test_many_one_click_posts_at_once_are_all_committed_when_answered(
    workspace: Workspace, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="newsletter.web")
    ids = _members(store, 40)
    list_id = store.list_id("main")
    assert list_id is not None
    keys = workspace.secret_keys()
    tokens = [
        make_unsubscribe_token(keys, sid, list_id, 5, email=f"reader{n}@example.org")
        for n, sid in enumerate(ids)
    ]
    tokens.append(make_unsubscribe_token(keys, ids[0], list_id, 5, email="someone@example.org"))
    server = ServeServer(workspace, store=store, scheduler=False)
    server.start_in_thread()
    try:

        async def post_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url) as client:
                return await asyncio.gather(
                    *(client.post(f"/u/{token}", data=ONE_CLICK) for token in tokens)
                )

        answers = asyncio.run(post_all())
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [200] * len(ids) + [404]
    assert not store.sendable_ids(ids, "main")
    assert all(_unsubscribe_consents(store, f"reader{n}@example.org") == 1 for n in range(40))
    # each batch logs who it took off which list, once per person
    logged = [
        int(number)
        for record in caplog.records
        if record.getMessage().startswith("unsubscribed from main (one-click): subscriber")
        for number in record.getMessage().split(": subscriber", 1)[1].lstrip("s ").split(", ")
    ]
    assert sorted(logged) == sorted(ids)
