"""Requests that wait together: one worker thread and one transaction for many.

``Batcher(run)``: each request ``await``s ``submit(item)``; items that arrive while a
batch is running wait for the next one, which takes them all (up to ``max_batch``) and
calls ``run(items)`` once in a worker thread. Nothing waits on a timer: a lone request
runs at once, and the busier the server the bigger the batches. For the unsubscribe
link this is group commit: one SQLite commit (one fsync) answers every POST of the
batch, and each answer still goes out only after its change was committed.

The worker thread takes the next batch itself as soon as one ends, and hands the
results back to the event loop with one wake-up per batch: the loop, busy answering the
last batch's requests, is never what the next batch waits for. Up to ``parallel``
threads drain the queue at once (reads); a thread with nothing left to take goes back
to its pool.

``run`` returns one result per item, in order. When it raises for a batch of several,
each item runs again alone, so one item's failure reaches only its own request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - the item type, beside R the result type
R = TypeVar("R")

MAX_BATCH = 256

Waiting = tuple[I, "asyncio.Future[R]"]


class Batcher(Generic[I, R]):
    """Runs ``run(items) -> results`` for the items submitted, ``parallel`` batches at once.

    ``submit`` from any event loop; ``run`` executes in one of ``parallel`` worker
    threads (named ``name``). ``close()`` lets the threads go once they are idle.
    """

    def __init__(
        self,
        run: Callable[[list[I]], Sequence[R]],
        *,
        parallel: int = 1,
        max_batch: int = MAX_BATCH,
        name: str = "batch",
    ) -> None:
        self._run = run
        self._parallel = parallel
        self._max_batch = max_batch
        self._name = name
        self._pending: deque[Waiting[I, R]] = deque()
        self._lock = threading.Lock()  # guards _pending and _draining
        self._draining = 0
        self._pool: ThreadPoolExecutor | None = None

    async def submit(self, item: I) -> R:
        """``item``'s result, once the batch holding it has run; its exception if it raised."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._pending.append((item, future))
            start = self._draining < self._parallel
            if start:
                self._draining += 1
        if start:
            self._threads().submit(self._drain)
        return await future

    def close(self) -> None:
        """Stop the worker threads once the batches they run have ended."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._parallel, thread_name_prefix=self._name)
        return self._pool

    def _drain(self) -> None:
        """Worker thread: run batches until nothing is pending."""
        while True:
            with self._lock:
                count = min(len(self._pending), self._max_batch)
                if not count:
                    self._draining -= 1
                    return
                batch = [self._pending.popleft() for _ in range(count)]
            try:
                outcomes = self._outcomes([item for item, _ in batch])
            except BaseException as exc:  # every waiter hears of it; the thread goes on
                outcomes = [exc] * len(batch)
            _deliver(batch, outcomes)

    def _outcomes(self, items: list[I]) -> list[R | BaseException]:
        """Per item its result or exception; a failed batch of several runs item by item."""
        try:
            results = list(self._run(items))
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            log.info("a batch of %d failed (%s); running each alone", len(items), exc)
            return [self._alone(item) for item in items]
        if len(results) != len(items):
            raise AssertionError(f"{len(items)} items gave {len(results)} results")
        return list(results)

    def _alone(self, item: I) -> R | BaseException:
        try:
            return self._run([item])[0]
        except Exception as exc:
            return exc


def _deliver(batch: list[Waiting[I, R]], outcomes: Sequence[R | BaseException]) -> None:
    """Hand each waiter its outcome on its own loop: one wake-up per loop and batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], R | BaseException]]]
    by_loop = {}
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(future.get_loop(), []).append((future, outcome))
    for loop, answers in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, answers)
        except RuntimeError:  # that loop has closed: nobody is waiting any more
            log.debug("a batch finished after its event loop closed")


def _settle(answers: list[tuple[asyncio.Future[R], R | BaseException]]) -> None:
    """On the loop: set each future still waiting (a cancelled request's is done)."""
    for future, outcome in answers:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
