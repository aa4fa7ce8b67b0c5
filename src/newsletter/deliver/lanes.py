"""One asyncio task per SMTP connection: it sends the rows the ledger loop gives it.

A ``Lane`` is one reused connection and the row it works on (at most one). Its task
(``Lanes.drive``) asks the coordinator (``engine.LedgerRun``) for a row, builds that
row's bytes (token, slots, VERP), waits for the rate limiter, runs the transaction as
an ``smtp.exchange.Exchange`` pumped whenever its socket is ready, and hands the
outcome back together with its request for the next row. Opening a session (connect,
TLS, AUTH: blocking smtplib round trips) runs in a worker thread; nothing else leaves
the loop's thread.

A 421 or a dropped connection is about the connection, not the recipient: the lane
reconnects after a short backoff (``SendTuning``) and tries the same row again, a few
times, before handing back the outcome; after each backoff the coordinator checks the
row again (an unsubscribe during the wait is honoured).

A ``DeliveryError`` (no connection at all, login rejected, sender refused) stops the
run. Once a connection has worked in this run, a failure to reconnect is retried like
a drop first. A 4xx greeting (``ServerBusyError``) is the server's business, not
ours: while other connections are open it means a cap on connections per client, and
the lane retires, handing its row back; once a connection has worked, a server still
refusing sessions after the retries (a restart, maintenance) defers the row and sets
``server_busy``, so the run ends ``waiting`` instead of stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import selectors
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

from newsletter.errors import DeliveryError, ServerBusyError
from newsletter.mail.template import MessageTemplate
from newsletter.smtp.connection import RetryOnNewConnection, SmtpConnection
from newsletter.smtp.exchange import Exchange
from newsletter.smtp.outcome import Outcome, Status
from newsletter.smtp.ratelimit import RateLimiter
from newsletter.store.deliveries import Claimed
from newsletter.store.records import Recipient

from .outcomes import is_connection_trouble

log = logging.getLogger(__name__)

# what a lane is doing, as the coordinator sees it
IDLE = "idle"  # waits for a row
READY = "ready"  # holds a row not yet on the wire (building it, waiting for the limiter)
OPENING = "opening"  # its session is being opened in a worker thread
SENDING = "sending"  # its transaction is with the server
WAITING = "waiting"  # a reconnect backoff
RECHECK = "recheck"  # after a backoff: waits for the ledger to check its row again
RETIRED = "retired"  # the server allows fewer connections: this one rests


@dataclass(frozen=True)
class Done:
    """The server's (or the connection's) last word on a row."""

    row: Claimed
    outcome: Outcome


@dataclass(frozen=True)
class Returned:
    """A row handed back untried (a stop, a retired lane): it goes back to queued."""

    row: Claimed


@dataclass(frozen=True)
class Fatal:
    """A row whose attempt showed the run cannot go on: it goes back to queued."""

    row: Claimed
    error: DeliveryError


Item = Done | Returned | Fatal


@dataclass(eq=False)
class Lane:
    """One SMTP connection and the row it is working on (at most one)."""

    connection: SmtpConnection
    row: Claimed | None = None
    state: str = IDLE
    request: asyncio.Future[Any] | None = None  # the coordinator's answer to IDLE or RECHECK

    def asks(self, state: str) -> bool:
        """Whether the lane waits in ``state`` for the coordinator's answer."""
        return self.state == state and self.request is not None and not self.request.done()


@dataclass(frozen=True)
class Retry:
    """How often and how soon a row is tried again after connection trouble."""

    attempts: int
    backoff: float
    backoff_cap: float


class Lanes:
    """The lanes of one run and what they share: ``items`` (outcomes the coordinator
    has not recorded yet), ``halted`` (no more sending), ``server_busy``."""

    def __init__(
        self,
        connections: list[SmtpConnection],
        template: MessageTemplate,
        limiter: RateLimiter,
        retry: Retry,
        opener: Executor,
        notify: Callable[[], None],
    ) -> None:
        self.all = [Lane(connection) for connection in connections]
        self.items: list[Item] = []
        self.halted = False
        self.connected = False  # some connection worked in this run
        self.server_busy = ""  # why the server refuses sessions, once a row was deferred
        self.closed = False  # the coordinator has no more rows for anyone
        self._template = template
        self._limiter = limiter
        self._retry = retry
        self._opener = opener
        self._notify = notify
        self._halt = asyncio.Event()

    def halt(self) -> None:
        """Stop sending: waiting lanes hand their rows back, opening sessions are cut."""
        self.halted = True
        self._halt.set()
        for lane in self.all:
            if lane.state == OPENING:
                lane.connection.abort_open()  # a silent server would hold it till the timeout
            elif lane.state == RECHECK:
                self.answer(lane, True, READY)

    def close(self) -> None:
        """No more rows: every lane's task ends (at once, or when it next asks)."""
        self.closed = True
        for lane in self.all:
            self.answer(lane, None, lane.state)

    def answer(self, lane: Lane, value: object, state: str) -> None:
        """The coordinator's answer to the lane's request (a row, a recheck verdict)."""
        lane.state = state
        if lane.request is not None and not lane.request.done():
            lane.request.set_result(value)

    async def drive(self, lane: Lane) -> None:
        """The lane's task: deliver the rows it is given until the coordinator has none."""
        while not self.closed:
            row = await self._ask(lane, IDLE)
            if row is None:
                return
            item = await self._deliver(lane, row)
            lane.row = None
            if item is not None:
                self.items.append(item)
            if lane.state == RETIRED:
                self._notify()
                return

    async def _ask(self, lane: Lane, state: str) -> Any:
        """Wait in ``state`` for the coordinator's answer."""
        lane.state = state
        lane.request = asyncio.get_running_loop().create_future()
        self._notify()
        try:
            return await lane.request
        finally:
            lane.request = None

    async def _deliver(self, lane: Lane, row: Claimed) -> Item | None:
        """Send ``row`` on the lane -> what to record, or None when its reader left
        during a reconnect backoff (the ledger has recorded that)."""
        recipient = Recipient(row.subscriber_id, row.email, row.name, row.attributes)
        try:
            data = self._template.personalise(recipient, message_key=str(row.id))
            message = (self._template.envelope_sender(recipient), data)
        except ValueError as exc:  # an address or name SMTP cannot carry
            return Done(row, Outcome(row.email, Status.PERMANENT, None, "5.1.3", str(exc)))
        retries = 0
        while True:
            if self.halted:
                return Returned(row)
            result = await self._attempt(lane, row, message, retries)
            if result is None:
                continue
            if not isinstance(result, Outcome):
                return result
            if not is_connection_trouble(result) or retries >= self._retry.attempts:
                return Done(row, result)
            retries += 1
            delay = min(self._retry.backoff * 2 ** (retries - 1), self._retry.backoff_cap)
            log.info("%s; retrying in %.2f s (%d)", result, delay, retries)
            lane.state = WAITING
            await self._pause(delay)
            if not self.halted and not await self._ask(lane, RECHECK):
                log.info("not retrying delivery %d: its reader left", row.id)
                return None

    async def _attempt(
        self, lane: Lane, row: Claimed, message: tuple[str, bytes], retries: int
    ) -> Outcome | Item | None:
        """One try of ``row`` -> the server's outcome, what to record at once, or None
        to try again at once (a reused connection the server had closed)."""
        connection = lane.connection
        if connection.needs_open:
            failed = await self._open(lane, row, retries)
            if failed is not None or self.halted:
                return failed or Returned(row)
        if not await self._rate_slot():
            return Returned(row)
        try:
            # personalise() writes CRLF line ends only and never starts a line with "."
            # (tests/test_message.py holds it to that): no need to scan 40 KB twice more
            exchange = connection.begin(message[0], [row.email], message[1], wire_ready=True)
        except ValueError as exc:
            return Outcome(row.email, Status.PERMANENT, None, "5.1.3", str(exc))
        lane.state = SENDING
        await pump(exchange)
        lane.state = READY
        try:
            outcome = connection.finish(exchange)[0]
        except RetryOnNewConnection:
            log.info("%s closed a reused connection; reconnecting", connection.settings.display)
            return None
        except DeliveryError as exc:  # the sender refused: every message would be
            return self._fatal(row, exc)
        self.connected = True
        return outcome

    async def _open(self, lane: Lane, row: Claimed, retries: int) -> Outcome | Item | None:
        """Open the lane's session in a worker thread -> None once open, else what the
        failure means: connection trouble to retry, or what to record."""
        lane.state = OPENING
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._opener, lane.connection.open)
        except Exception as exc:  # a thread's error, judged below
            error = exc
        else:
            self.connected = True
            return None
        finally:
            lane.state = READY
        if self.halted:
            return Returned(row)
        if not isinstance(error, DeliveryError):
            log.error("unexpected error while connecting", exc_info=error)
            error = DeliveryError(f"unexpected error while connecting: {error}")
        trouble = Outcome(row.email, Status.TRANSIENT, None, "", str(error))
        if isinstance(error, ServerBusyError):
            busy = self._server_busy(lane, row, trouble, retries, error)
            if busy is not None:
                return busy
        # never connected in this run (wrong host, password) or reconnecting keeps
        # failing: the whole run stops; a server that worked gets a few tries
        if not self.connected or retries >= self._retry.attempts:
            return self._fatal(row, error)
        return trouble

    def _server_busy(
        self, lane: Lane, row: Claimed, trouble: Outcome, retries: int, error: ServerBusyError
    ) -> Outcome | Item | None:
        """What a 4xx greeting means for the lane -> None when it is judged as any
        failure to connect."""
        others = [other for other in self.all if other is not lane and other.state != RETIRED]
        if any(other.connection.is_open and not other.connection.needs_open for other in others):
            # a cap on connections per client: go on with the ones it allows
            log.warning("%s; going on with one connection fewer", error)
            lane.state = RETIRED
            return Returned(row)
        if any(other.state == OPENING for other in others):
            return trouble  # the others will tell: try again shortly
        if self.connected and retries >= self._retry.attempts:
            # busy for a while (a restart, a maintenance window): not the reader's fault,
            # not a reason to stop; a later run tries this row and every queued one
            self.server_busy = str(error)
            return Done(row, replace(trouble, code=421))
        return None

    def _fatal(self, row: Claimed, error: DeliveryError) -> Fatal:
        self.halt()
        return Fatal(row, error)

    async def _rate_slot(self) -> bool:
        """Wait for the rate limiter's next slot and take it -> False if the run halted."""
        while True:
            wait = self._limiter.try_take()
            if not wait:
                return True
            await self._pause(wait)
            if self.halted:
                return False

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the run halts."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._halt.wait(), seconds)


async def pump(exchange: Exchange) -> None:
    """Drive ``exchange`` to its end on the running loop: pump it whenever its socket
    is ready, expire it past its deadline."""
    exchange.pump()  # the envelope goes out now, not after the next wait
    if exchange.done:
        return
    loop = asyncio.get_running_loop()
    fd = exchange.sock.fileno()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    loop.add_reader(fd, wake)
    writing = False
    timer = loop.call_at(exchange.deadline, wake)  # loop.time() is time.monotonic()
    try:
        while not exchange.done:
            if bool(exchange.wants() & selectors.EVENT_WRITE) != writing:
                writing = not writing
                if writing:
                    loop.add_writer(fd, wake)
                else:
                    loop.remove_writer(fd)
            await waiter
            waiter = loop.create_future()
            exchange.pump()
            if exchange.done:
                break
            if loop.time() >= exchange.deadline:
                exchange.expire()
            elif timer.when() < exchange.deadline and loop.time() >= timer.when():
                # progress moved the deadline: one timer per exchange, re-armed when it fires
                timer = loop.call_at(exchange.deadline, wake)
    finally:
        timer.cancel()
        loop.remove_reader(fd)
        if writing:
            loop.remove_writer(fd)
