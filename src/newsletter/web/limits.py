"""A per-client sliding-window counter, in memory (one ``serve`` process: each of
``serve --workers N`` counts apart).

Used to slow down someone guessing tokens (invalid-token requests per client IP) and
someone flooding the subscribe form. The window slides: a client is refused while it
made ``limit`` counted requests within the last ``window`` seconds. The number of
clients remembered is capped, forgetting the least recently seen first, so a flood
from many addresses cannot grow the memory without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """``limit`` events per ``window`` seconds per key; ``clock`` is injectable for tests."""

    def __init__(
        self,
        limit: int,
        *,
        window: float = 60.0,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        cutoff = now - self.window
        while events and events[0] <= cutoff:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def blocked(self, key: str) -> bool:
        """Whether ``key`` has used up its ``limit`` within the window (counts nothing)."""
        with self._lock:
            events = self._recent(key, self._clock())
            return events is not None and len(events) >= self.limit

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may try again (0 when it is not blocked)."""
        with self._lock:
            now = self._clock()
            events = self._recent(key, now)
            if events is None or len(events) < self.limit:
                return 0
            return max(1, math.ceil(events[-self.limit] + self.window - now))

    def hit(self, key: str) -> None:
        """Count one event for ``key`` now."""
        with self._lock:
            now = self._clock()
            events = self._recent(key, now)
            if events is None:
                events = deque()
                self._events[key] = events
                while len(self._events) > self.max_keys:
                    self._events.popitem(last=False)
            else:
                self._events.move_to_end(key)
            events.append(now)
            # no need to remember more than the limit: older ones cannot matter
            while len(events) > self.limit:
                events.popleft()
