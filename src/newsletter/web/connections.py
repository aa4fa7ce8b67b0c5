"""Connections to ``serve`` that cannot hold it hostage, and log lines that cannot flood.

uvicorn waits as long as a client likes for a request's headers and body, and accepts
connections until the process runs out of file descriptors; a few hundred clients
sending one byte every few seconds then block everyone, and every refused ``accept()``
logs a traceback. So each connection gets deadlines: its request headers complete
within ``serve.header_timeout_seconds`` of the first byte (or of opening), its body within
``serve.body_timeout_seconds`` of the headers; trickling bytes does not move a deadline.
At ``serve.max_connections`` open connections a new one takes the place of the one that
has waited longest for its headers (or sits idle between requests), and is refused when
every connection is busy. ``RepeatFilter`` lets a few identical log lines through per
minute and counts the rest.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    DEFAULT_PARSER = "httptools"
except ImportError:  # httptools not installed: uvicorn's pure-Python parser
    HttpToolsProtocol = asyncio.Protocol  # type: ignore[assignment,misc]
    DEFAULT_PARSER = "h11"

log = logging.getLogger(__name__)

HEADERS = "headers"
BODY = "body"


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a request's headers and body may take, and how many connections stay open."""

    header_seconds: float
    body_seconds: float
    max_connections: int


class _Guard(asyncio.Protocol):
    """Header and body deadlines and a connection cap, over one of uvicorn's HTTP
    protocols (mixed in before it). A subclass says in ``_waiting_phase`` what the
    connection waits for, from its parser's state."""

    limits: ClassVar[ConnectionLimits]
    # what the uvicorn protocol below provides
    transport: asyncio.Transport
    connections: set[Any]
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    timeout_keep_alive_task: asyncio.TimerHandle | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None
        self._phase_since = 0.0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection in, making room at the cap; start its header deadline."""
        if len(self.connections) >= self.limits.max_connections and not self._make_room():
            log.warning(
                "%d connections open, all busy: refusing a new one", self.limits.max_connections
            )
            self.transport = transport  # connection_lost, which follows, closes it again
            transport.abort()
            return
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        """Read as uvicorn does, then move the deadline if the request moved on a phase."""
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        """After an answer the connection idles under uvicorn's keep-alive timeout."""
        super().on_response_complete()  # type: ignore[misc]
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        self._set_phase(None)
        super().connection_lost(exc)

    def _waiting_phase(self) -> str | None:
        raise NotImplementedError

    def _watch(self) -> None:
        phase = self._waiting_phase()
        if phase != self._phase:
            self._set_phase(phase)

    def _set_phase(self, phase: str | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        self._phase_since = self.loop.time()
        if phase is not None:
            seconds = self.limits.header_seconds if phase == HEADERS else self.limits.body_seconds
            self._deadline = self.loop.call_later(seconds, self._too_slow, phase, seconds)

    def _too_slow(self, phase: str, seconds: float) -> None:
        self._deadline = None
        host = self.client[0] if self.client else "unknown"
        log.info("closed a connection from %s: request %s took over %g s", host, phase, seconds)
        self.transport.close()

    def _make_room(self) -> bool:
        """Close the connection waiting longest for headers or idling -> False if none."""
        waiting = [
            other
            for other in self.connections
            if isinstance(other, _Guard)
            and (other._phase == HEADERS or other.timeout_keep_alive_task is not None)
            and not other.transport.is_closing()
        ]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda other: other._phase_since)
        oldest.transport.close()
        oldest.connections.discard(oldest)
        return True


class GuardedHttpToolsProtocol(_Guard, HttpToolsProtocol):
    """uvicorn's httptools protocol (its parser is C, h11's Python) with the guard."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading: str | None = None  # HEADERS or BODY while a request comes in

    def on_message_begin(self) -> None:
        """A request's first bytes: its headers are coming."""
        super().on_message_begin()
        self._reading = HEADERS

    def on_headers_complete(self) -> None:
        """Headers read: the body (if any) is coming."""
        self._reading = BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The whole request is in: the app answers it."""
        self._reading = None
        super().on_message_complete()

    def _waiting_phase(self) -> str | None:
        if self.transport is None or self.transport.is_closing():
            return None
        if self._reading is not None:
            return self._reading
        answering = self.cycle is not None and not self.cycle.response_complete
        if self.timeout_keep_alive_task is None and not answering:
            return HEADERS  # a new connection, or a kept-alive one whose next request began
        return None  # the app is answering, or the connection idles between requests


class GuardedH11Protocol(_Guard, H11Protocol):
    """uvicorn's h11 protocol with the guard (where httptools is not installed)."""

    def _waiting_phase(self) -> str | None:
        if self.transport is None or self.transport.is_closing():
            return None
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            return BODY
        if state is h11.IDLE and self.timeout_keep_alive_task is None:
            return HEADERS
        return None  # the app is answering, or the connection idles between requests


def guarded_protocol(limits: ConnectionLimits, *, parser: str | None = None) -> type[_Guard]:
    """The protocol class to hand uvicorn (``Config(http=...)``) for ``limits``:
    ``parser`` "httptools" (the default when installed) or "h11"."""
    base: type[_Guard] = GuardedH11Protocol
    if (parser or DEFAULT_PARSER) == "httptools":
        base = GuardedHttpToolsProtocol
    return type(f"Serve{base.__name__}", (base,), {"limits": limits})


@dataclass
class _Repeats:
    since: float
    passed: int = 0
    dropped: int = 0


class RepeatFilter(logging.Filter):
    """Passes ``per_interval`` records alike (logger, level, first line) per ``interval`` s.

    The rest are counted; the first record alike after the interval says how many were
    dropped. A flood of identical errors costs a few lines a minute, not the disk.
    """

    def __init__(
        self,
        per_interval: int = 5,
        interval: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1000,
    ) -> None:
        super().__init__()
        self.per_interval = per_interval
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._seen: dict[tuple[str, int, str], _Repeats] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """True to log ``record``; a record after a dropped run carries the count."""
        key = (record.name, record.levelno, str(record.msg).partition("\n")[0][:200])
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or now - seen.since >= self.interval:
                dropped = seen.dropped if seen else 0
                if seen is None and len(self._seen) >= self.max_keys:
                    self._seen.clear()
                self._seen[key] = _Repeats(since=now, passed=1)
            elif seen.passed < self.per_interval:
                seen.passed += 1
                return True
            else:
                seen.dropped += 1
                return False
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} more like this were not logged)"
            record.args = None
        return True


def limit_repeats(logger_names: tuple[str, ...], repeat_filter: RepeatFilter) -> None:
    """Attach ``repeat_filter`` to each named logger once (records logged there directly)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(repeat_filter)
