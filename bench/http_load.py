"""The load side of bench_unsubscribe: many keep-alive clients hitting token URLs.

``fire`` sends one request per token from CLIENTS concurrent connections (httpx) and
returns what each got and when; ``report_load`` prints requests/s, p50/p99 latency,
errors and the server's CPU per request.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclass
class Result:
    """One request: which subscriber, status (0 = transport error), when sent and answered."""

    subscriber_id: int
    status: int
    started: float
    answered: float


async def fire(
    base: str,
    tokens: Sequence[tuple[int, str]],
    clients: int,
    deadline: float,
    *,
    method: str = "POST",
) -> list[Result]:
    """``method`` (one-click POST, or GET of the confirmation page) to every token's
    ``/u/`` URL from ``clients`` concurrent connections, until done or ``deadline``."""
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in tokens:
        queue.put_nowait(item)
    results: list[Result] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:

        async def one(token: str) -> httpx.Response:
            if method == "GET":
                return await client.get(f"/u/{token}")
            return await client.post(f"/u/{token}", content=ONE_CLICK, headers=FORM)

        async def worker() -> None:
            while not queue.empty() and time.time() < deadline:
                subscriber_id, token = queue.get_nowait()
                started = time.time()
                try:
                    status = (await one(token)).status_code
                except httpx.HTTPError as exc:
                    print(f"  transport error: {type(exc).__name__}: {exc}")
                    status = 0
                results.append(Result(subscriber_id, status, started, time.time()))

        await asyncio.gather(*(worker() for _ in range(clients)))
    return results


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def report_load(results: Sequence[Result], label: str, server_cpu: float) -> float:
    """Print requests/s, p50/p99 latency, errors and server CPU per request -> that CPU in ms."""
    ok = [r for r in results if r.status == 200]
    span = max(r.answered for r in results) - min(r.started for r in results)
    latencies = [(r.answered - r.started) * 1000 for r in results]
    print(f"{label}: {len(results)} requests in {span:.2f} s = {len(results) / span:.0f} req/s")
    print(
        f"  latency p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
    )
    statuses: dict[int, int] = {}
    for result in results:
        if result.status != 200:
            statuses[result.status] = statuses.get(result.status, 0) + 1
    print(f"  errors (not 200): {len(results) - len(ok)} {statuses or ''}".rstrip())
    cpu_ms = server_cpu * 1000 / len(results)
    print(f"  serve process CPU: {cpu_ms:.2f} ms per request")
    return cpu_ms
