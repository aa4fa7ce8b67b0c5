"""A message rate limit for a caller that must never block (the send loop)."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """At most ``per_second`` messages per second (0 = no limit), for a caller that must
    never block (the send loop): ``try_take`` a slot or learn how long until one,
    ``ready_in`` to look without taking. ``clock`` is injectable for tests."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._next = 0.0

    def set_rate(self, per_second: float) -> None:
        """Change the limit (0 = none) from the next message on."""
        self.interval = 1.0 / per_second if per_second > 0 else 0.0

    def ready_in(self) -> float:
        """Seconds until a message may go (0.0: now); takes nothing."""
        if not self.interval:
            return 0.0
        return max(self._next - self._clock(), 0.0)

    def try_take(self) -> float:
        """0.0 when a message may go now (its slot is taken), else the seconds until one
        may (nothing taken). Idle time builds up no burst: the next slot counts from now."""
        wait = self.ready_in()
        if self.interval and not wait:
            self._next = self._clock() + self.interval
        return wait
