"""Requests that wait together: one worker-thread hop and one transaction for many.

``Batcher(run)``: each request ``await``s ``submit(item)``; items that arrive while a
batch is running wait for the next one, which takes them all (up to ``max_batch``) and
calls ``run(items)`` once in a worker thread. Nothing waits on a timer: a lone request
runs at once, and the busier the server the bigger the batches. For the unsubscribe
link this is group commit: one SQLite commit (one fsync) answers every POST of the
batch, and each answer still goes out only after its change was committed.

``run`` returns one result per item, in order. When it raises for a batch of several,
each item runs again alone, so one item's failure reaches only its own request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio.to_thread

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - the item type, beside R the result type
R = TypeVar("R")

MAX_BATCH = 256


class Batcher(Generic[I, R]):
    """Runs ``run(items) -> results`` for the items submitted, ``parallel`` batches at once.

    Use from one event loop; ``run`` executes in a worker thread.
    """

    def __init__(
        self,
        run: Callable[[list[I]], Sequence[R]],
        *,
        parallel: int = 1,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._run = run
        self._parallel = parallel
        self._max_batch = max_batch
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: I) -> R:
        """``item``'s result, once the batch holding it has run; its exception if it raised."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._start()
        return await future

    def _start(self) -> None:
        while self._pending and self._running < self._parallel:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._batch(batch))
            # the loop keeps only weak references to tasks
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _batch(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        outcomes: list[R | BaseException] | None = None
        try:
            outcomes = await anyio.to_thread.run_sync(self._outcomes, [i for i, _ in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        finally:  # also when cancelled (shutdown): no waiter is left hanging
            self._running -= 1
            for index, (_, future) in enumerate(batch):
                if future.done():  # its request was cancelled meanwhile
                    continue
                if outcomes is None:
                    future.cancel()
                    continue
                outcome = outcomes[index]
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            self._start()

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
