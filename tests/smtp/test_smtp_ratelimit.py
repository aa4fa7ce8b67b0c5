"""RateLimiter on a fake clock."""

from __future__ import annotations

import itertools

from newsletter.smtp.ratelimit import RateLimiter


def test_rate_limiter_spaces_messages_on_a_fake_clock() -> None:
    now = [100.0]
    limiter = RateLimiter(4.0, clock=lambda: now[0])
    sent_at: list[float] = []
    while len(sent_at) < 5:
        wait = limiter.try_take()
        if wait:
            assert limiter.ready_in() == wait  # looking takes nothing
            now[0] += wait
        else:
            sent_at.append(now[0])
    assert [round(b - a, 6) for a, b in itertools.pairwise(sent_at)] == [0.25] * 4
    now[0] += 10  # idle time does not build up a burst
    assert limiter.try_take() == 0.0
    assert limiter.try_take() == 0.25
    unlimited = RateLimiter(0)
    assert [unlimited.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
