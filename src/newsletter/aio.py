"""``run_async``: run a coroutine to its end from plain, synchronous code.

The fetcher, the LLM client and the send loop are asyncio inside and synchronous outside.
``asyncio.run`` refuses to start while the calling thread already runs an event loop (a
caller inside an async framework, a notebook, a test driving a browser), so there the
coroutine gets a loop of its own in a short-lived thread instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a new event loop and return its result (or raise its error)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    outcome: dict[str, Any] = {}

    def run_here() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # handed to the caller's thread as it is
            outcome["error"] = exc

    worker = threading.Thread(target=run_here, name="newsletter-async", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
