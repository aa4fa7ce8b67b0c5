"""The load side of bench_unsubscribe: many keep-alive clients hitting token URLs.

``fire`` sends one request per token from CLIENTS concurrent keep-alive connections and
returns what each got and when; ``report_load`` prints requests/s, p50/p99 latency,
errors, the server's CPU per request and this client's.

The client shares the machine with the server it measures, so it is kept cheap: raw
asyncio connections (one ``asyncio.Protocol`` each) writing prebuilt HTTP/1.1 requests
and reading each answer's status line and ``Content-Length`` body, nothing more. An
HTTP library (httpx) spent more CPU per request than the server it was measuring.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

ONE_CLICK = b"List-Unsubscribe=One-Click"
TIMEOUT_SECONDS = 30.0


@dataclass
class Result:
    """One request: which subscriber, status (0 = transport error), when sent and answered,
    and whether it was a warm-up request (not in the figures)."""

    subscriber_id: int
    status: int
    started: float
    answered: float
    warmup: bool = False


class HttpError(Exception):
    """The connection closed or sent something this client does not read."""


def request_bytes(method: str, host: str, path: str) -> bytes:
    """One keep-alive HTTP/1.1 request: a GET, or a one-click POST (urlencoded)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\n"
    if method != "POST":
        return (head + "\r\n").encode("ascii")
    head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(ONE_CLICK)}"
    return (head + "\r\n\r\n").encode("ascii") + ONE_CLICK


class Connection(asyncio.Protocol):
    """One keep-alive connection answering one request at a time (``ask``)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._answer: asyncio.Future[int] | None = None
        self._lost: Exception | None = None
        self._reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            status = self._complete_answer()
        except HttpError as exc:
            self._fail(exc)
            return
        if status is not None and self._answer is not None and not self._answer.done():
            self._answer.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or HttpError("connection closed by the server")
        self._fail(self._lost)

    def _fail(self, exc: Exception) -> None:
        self._reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)

    def _complete_answer(self) -> int | None:
        """The status of a complete answer at the buffer's start (removed), else None."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self._buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if not head.startswith(b"http/1.1 ") or at < 0:
            raise HttpError(f"unreadable answer head: {head[:80]!r}")
        start = at + len(b"\r\ncontent-length:")
        stop = head.find(b"\r\n", start)
        length = int(head[start : stop if stop >= 0 else len(head)])
        if len(self._buffer) < end + 4 + length:
            return None
        if b"\r\nconnection: close" in head:
            self._reusable = False
        del self._buffer[: end + 4 + length]
        return int(head[9:12])

    async def ask(self, request: bytes) -> int:
        """Send ``request`` -> the answer's status; HttpError (or OSError) if it failed."""
        if self._lost is not None or self.transport is None:
            raise HttpError("connection already closed")
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await asyncio.wait_for(self._answer, TIMEOUT_SECONDS)

    @property
    def reusable(self) -> bool:
        """Whether another request may go on this connection."""
        return self._reusable and self._lost is None

    def close(self) -> None:
        """Close the connection (no more requests)."""
        if self.transport is not None:
            self.transport.close()


async def _connect(host: str, port: int) -> Connection:
    _, connection = await asyncio.get_running_loop().create_connection(Connection, host, port)
    return connection


async def fire(
    base: str,
    tokens: Sequence[tuple[int, str]],
    clients: int,
    deadline: float,
    *,
    method: str = "POST",
    warmup: int = 0,
    measuring: Callable[[], None] | None = None,
) -> list[Result]:
    """``method`` (one-click POST, or GET of the confirmation page) to every token's
    ``/u/`` URL from ``clients`` concurrent connections, until done or ``deadline``.

    The first ``warmup`` tokens go first, on the same connections, and every client waits
    for the others to finish them before the rest: the figures then leave out opening the
    connections and a server's first requests (its caches filling), and their results are
    marked ``warmup``. ``measuring()`` is called once, as the measured requests start.
    """
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    prefix = url.path.rstrip("/")
    requests = [
        (sid, request_bytes(method, url.netloc, f"{prefix}/u/{token}")) for sid, token in tokens
    ]
    phases = [requests[:warmup][::-1], requests[warmup:][::-1]]  # pop() keeps the order
    barrier = asyncio.Barrier(clients)
    results: list[Result] = []

    async def worker() -> None:
        connection: Connection | None = None
        for phase, work in enumerate(phases):
            while work and time.time() < deadline:
                subscriber_id, request = work.pop()
                started = time.time()
                try:
                    if connection is None or not connection.reusable:
                        if connection is not None:
                            connection.close()
                        connection = await _connect(host, port)
                    status = await connection.ask(request)
                except (HttpError, OSError, TimeoutError) as exc:
                    print(f"  transport error: {type(exc).__name__}: {exc}")
                    status = 0
                    connection = None
                results.append(Result(subscriber_id, status, started, time.time(), phase == 0))
            if await barrier.wait() == 0 and phase == 0 and measuring is not None:
                measuring()
            await barrier.wait()  # nobody starts the measured requests before measuring()
        if connection is not None:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(clients)))
    return results


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def report_load(
    results: Sequence[Result], label: str, server_cpu: float, client_cpu: float | None = None
) -> float:
    """Print requests/s, p50/p99 latency, errors, server CPU per request (and the load
    client's, given its CPU seconds) -> the server's CPU per request in ms. Warm-up
    requests are left out (give the CPU of the measured ones only)."""
    results = [r for r in results if not r.warmup]
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
    if client_cpu is not None:
        print(f"  load client CPU: {client_cpu * 1000 / len(results):.2f} ms per request")
    return cpu_ms
