"""Benchmark: GET confirmation pages per second from ``newsletter serve``.

    python bench/bench_pages.py [--subscribers 5000] [--requests 3000] [--clients 32]

Starts ``newsletter serve`` (uvicorn, its own process) on loopback for a throwaway
workspace, then GETs unsubscribe confirmation pages (``/u/{token}``, a distinct
subscriber each time) and, separately, double opt-in confirm pages (``/c/{token}``) from
CLIENTS concurrent connections. Prints pages/s, p50/p99 latency and the server
process's CPU time per page (the client shares the machine, so pages/s also shows its
cost; /healthz gives that ceiling) for each, and checks
that the GETs changed nothing (every subscriber still sendable, every request pending).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psutil
from bench_unsubscribe import SECRET, child_env, make_workspace, percentile, start_serve, stop


async def fetch_all(
    base: str, paths: Sequence[str], clients: int
) -> tuple[list[float], int, float]:
    """GET every path from ``clients`` connections -> (latencies ms, errors, seconds)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                path = queue.get_nowait()
                started = time.perf_counter()
                try:
                    answer = await client.get(path)
                    ok = answer.status_code == 200 and (
                        path == "/healthz" or '<form method="post">' in answer.text
                    )
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - started


def measure(
    label: str, base: str, paths: Sequence[str], clients: int, server: psutil.Process
) -> None:
    """GET ``paths`` and print pages/s, latency percentiles and the server's CPU per page."""
    me = psutil.Process()
    before, mine = server.cpu_times(), me.cpu_times()
    latencies, errors, seconds = asyncio.run(fetch_all(base, paths, clients))
    after, mine_after = server.cpu_times(), me.cpu_times()
    cpu_ms = (after.user + after.system - before.user - before.system) * 1000 / len(paths)
    client_ms = (mine_after.user + mine_after.system - mine.user - mine.system) * 1000 / len(paths)
    print(f"{label}: {len(latencies)} pages in {seconds:.2f} s = {len(latencies) / seconds:.0f}/s")
    print(
        f"  latency p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms; errors {errors}; "
        f"server CPU {cpu_ms:.2f} ms/page (= {1000 / cpu_ms:.0f} pages/s per core); "
        f"the client's own CPU {client_ms:.2f} ms/page"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()

    from newsletter.mail.tokens import ConfirmTokens, UnsubscribeTokens
    from newsletter.store import Consent, open_store

    with tempfile.TemporaryDirectory(prefix="bench-pages-") as temp:
        root, ids, list_id = make_workspace(Path(temp), args.subscribers)
        url = f"sqlite:///{root / 'subscribers' / 'newsletter.db'}"
        with open_store(url) as store:
            pending = [
                store.add_pending(
                    f"asker{n}@bench.example.org", list_name="main", consent=Consent(source="web")
                ).subscriber_id
                for n in range(min(500, args.subscribers))
            ]
        rng = random.Random(3)
        unsubscribe = UnsubscribeTokens((SECRET,))
        confirm = ConfirmTokens((SECRET,))
        u_paths = [
            f"/u/{unsubscribe.make(rng.choice(ids), list_id, 1)}" for _ in range(args.requests)
        ]
        c_paths = [f"/c/{confirm.make(rng.choice(pending), list_id)}" for _ in range(args.requests)]
        serve, base = start_serve(root, child_env({}))
        try:
            server = psutil.Process(serve.pid)
            asyncio.run(fetch_all(base, u_paths[:200], args.clients))  # warm-up
            # the ceiling of this client and uvicorn on this machine: one tiny query, no page
            baseline = ["/healthz"] * args.requests
            measure("GET /healthz (baseline)", base, baseline, args.clients, server)
            measure("GET /u/ unsubscribe page", base, u_paths, args.clients, server)
            measure("GET /c/ confirm page", base, c_paths, args.clients, server)
        finally:
            stop(serve)
        with open_store(url) as store:
            still = len(store.sendable_ids(ids, "main"))
            waiting = store.count(list_name="main", status="pending")
        print(f"  after the GETs: {still} of {len(ids)} still sendable, {waiting} still pending")


if __name__ == "__main__":
    main()
