"""The ledger loop: claim rows, send them on N reused connections, record every outcome.

One thread
----------
The run is one thread juggling ``connections`` SMTP connections (``Lane``s) with
``selectors``, and the only one touching the database. Each lane holds at most one
row at a time: it builds that row's bytes (token, slots, VERP), starts the SMTP
transaction (``smtp.exchange.Exchange``), and the loop pumps every exchange as its socket
becomes ready. Opening a session (connect, TLS, AUTH: round trips that would stall the
other lanes) runs in a small thread pool; nothing else does.

Each turn of the loop collects the outcomes that have arrived, and in ONE write
transaction records them and claims (marks ``sending``) one new row for each lane that
is free; it commits, reports progress, and only then do the claimed rows go out. So:

- a row's bytes go out only after its ``sending`` mark is committed, and an outcome is
  reported (progress, summary) only after it is committed;
- outcomes from several lanes share one commit (group commit);
- a row retried after a reconnect backoff is checked again first (``step(recheck=)``):
  an unsubscribe during the wait is honoured;
- at any moment at most ``connections`` rows are ``sending``: a lane's next row is
  claimed in the same transaction that records its previous outcome. After a
  ``kill -9`` the rerun sends those rows again; the ones whose bytes the server had
  taken arrive twice, so at most ``connections`` people get a duplicate, nobody is
  missed.

One thread instead of a thread per connection: the work per message is CPU (building
40 KB, the SQL, the socket calls), and threads only took turns on the GIL, with a
hand-off (worker -> database thread -> worker) per message on top; see
bench/bench_send.py.

Every message is personalised (its own token, name, Message-ID), so each transaction
carries one recipient (``send.recipients_per_transaction`` is accepted and ignored).
``send.messages_per_connection`` is enforced per connection, ``--rate`` by one limiter
for the run.

Outcomes (see ``newsletter.smtp.outcome``)
----------------------------------------
``ACCEPTED`` -> sent. ``PERMANENT`` (5xx) -> failed with code and reply, never retried;
an enhanced code meaning "no such mailbox" (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10, 5.2.1)
also suppresses the subscriber as bounced. A bare 5xx without such a code (a policy
or spam block) does not: that would punish the reader for the sender's reputation.
``UNKNOWN`` (the final "." went out, no reply came) -> unknown: maybe delivered, so
never resent automatically (a resend could duplicate) and never counted as failed.
``TRANSIENT``: a 421 or a dropped connection is about the connection, not the
recipient: the lane reconnects after a short backoff (``SendTuning``) and tries the
same message again, a few times, before deferring it. Any other 4xx (greylisting, a
full mailbox) defers the row at once. A deferred row gets ``next_attempt_at = now +
min(retry_cap_seconds, retry_floor_seconds * 2 ** (attempts - 1))`` and is retried by
a later run once due; past ``retry_lifetime_hours`` since its first attempt it fails.

A ``DeliveryError`` (no connection at all, login rejected, sender refused) stops the
run at once: no more claims, the rows in flight go back to ``queued``, nothing of them
is marked sent. Once a connection has worked in this run, a failure to reconnect is
retried like a drop first. A 4xx greeting (``ServerBusyError``) is the server's
business, not ours: while other connections are open it means a cap on connections per
client, and the run goes on with those; once it has worked in this run, a server still
refusing sessions after the retries (a restart, maintenance) defers the row, so the
run ends ``waiting`` instead of stopping.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from newsletter.config import Send
from newsletter.errors import DeliveryError, ServerBusyError
from newsletter.mail.template import MessageTemplate
from newsletter.smtp.connection import RetryOnNewConnection, SmtpConnection
from newsletter.smtp.exchange import Exchange
from newsletter.smtp.outcome import Outcome, Status
from newsletter.smtp.ratelimit import RateLimiter
from newsletter.smtp.settings import SmtpSettings
from newsletter.store import Store, utcnow
from newsletter.store.deliveries import DEFERRED, FAILED, QUEUED, SENT, UNKNOWN, Claimed, Result
from newsletter.store.ledger import LedgerSession
from newsletter.store.records import Recipient

from .reports import SendProgress

log = logging.getLogger(__name__)

HARD_BOUNCE_CODES = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"})


@dataclass(frozen=True)
class SendTuning:
    """Timing knobs of a run; the defaults suit real servers, tests shrink them.

    ``reconnect_attempts`` retries of one message on a fresh connection after a 421 or
    a drop (``reconnect_backoff`` seconds before the first, doubling up to
    ``reconnect_backoff_cap``) before it is deferred; ``heartbeat_seconds`` how often a
    run tells other processes it is alive, ``stale_after_seconds`` when a silent run
    counts as dead; ``clock`` the time the ledger records.
    """

    reconnect_attempts: int = 6
    reconnect_backoff: float = 0.1
    reconnect_backoff_cap: float = 5.0
    heartbeat_seconds: float = 5.0
    stale_after_seconds: float = 60.0
    clock: Callable[[], datetime] = utcnow


@dataclass
class RunCounts:
    """Outcomes recorded so far in one run."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    unknown: int = 0
    bounced: int = 0
    connections_opened: int = 0
    fatal: DeliveryError | None = None
    stopped: bool = False


# --- deciding what an outcome means --------------------------------------------------------


def is_connection_trouble(outcome: Outcome) -> bool:
    """A 421 or a lost connection: the server wants us to come back, not this recipient."""
    return outcome.status is Status.TRANSIENT and (outcome.code is None or outcome.code == 421)


def is_hard_bounce(outcome: Outcome) -> bool:
    """A 5xx whose enhanced status says the mailbox does not exist or is disabled."""
    return outcome.status is Status.PERMANENT and outcome.enhanced in HARD_BOUNCE_CODES


def backoff(attempts: int, send: Send) -> timedelta:
    """Wait before the next try after ``attempts`` transient failures (rule 20)."""
    seconds = send.retry_floor_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(send.retry_cap_seconds, seconds))


def result_for(row: Claimed, outcome: Outcome, now: datetime, send: Send) -> Result:
    """The ledger entry for ``row`` after ``outcome`` at ``now``."""
    status, reply, next_at = FAILED, outcome.reply, None
    if outcome.status is Status.ACCEPTED:
        status = SENT
    elif outcome.status is Status.UNKNOWN:
        status = UNKNOWN
    elif outcome.status is Status.TRANSIENT:
        first = row.first_attempt_at or now
        if now - first >= timedelta(hours=send.retry_lifetime_hours):
            reply = f"gave up after {send.retry_lifetime_hours:g} h: {outcome.reply}"
        else:
            status, next_at = DEFERRED, now + backoff(row.attempts, send)
    return Result(
        row.id,
        status,
        code=outcome.code,
        enhanced=outcome.enhanced,
        reply=reply,
        next_attempt_at=next_at,
        subscriber_id=row.subscriber_id,
        email=row.email,
        bounce=is_hard_bounce(outcome),
    )


# --- the run --------------------------------------------------------------------------------

# Longest wait in one select: how soon a stop request (Ctrl-C, shutdown) is noticed
# while every connection is quiet.
_STOP_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class _Done:
    row: Claimed
    outcome: Outcome


@dataclass(frozen=True)
class _Returned:
    """A row handed back untried (stop requested): it goes back to queued."""

    row: Claimed


@dataclass(frozen=True)
class _Fatal:
    row: Claimed
    error: DeliveryError


_Item = _Done | _Returned | _Fatal


@dataclass
class _Lane:
    """One SMTP connection and the row it is working on (at most one)."""

    connection: SmtpConnection
    row: Claimed | None = None
    message: tuple[str, bytes] | None = None  # (MAIL FROM, wire bytes) of ``row``
    exchange: Exchange | None = None
    opening: Future[None] | None = None
    retries: int = 0  # reconnects spent on ``row``
    resume_at: float = 0.0  # backoff: monotonic time before which it waits
    retired: bool = False  # the server allows fewer connections: this one rests
    recheck: bool = False  # after a backoff: check the reader may still receive

    @property
    def busy(self) -> bool:
        """Whether the lane waits for the server or a connection, not for the loop."""
        return self.exchange is not None or self.opening is not None


@dataclass
class LedgerRun:
    """One pass over a campaign's due rows (see the module docstring).

    ``run()`` returns the counts; it never raises for a recipient's problem, and
    reports a run-stopping DeliveryError in ``RunCounts.fatal``.
    """

    store: Store
    campaign_id: int
    list_id: int
    runner: str
    template: MessageTemplate
    smtp: SmtpSettings
    send_config: Send
    connections: int
    total: int
    rate: float = 0.0
    tuning: SendTuning = field(default_factory=SendTuning)
    progress: Callable[[SendProgress], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._limiter = RateLimiter(self.rate)
        self._connected = False  # some connection worked in this run
        self._halted = False  # no more sending: stop asked, or a fatal error
        self._items: list[_Item] = []  # outcomes not yet recorded
        self._rate_wait = 0.0
        self._next_claim: float | None = None  # under --rate: when the next claim may go
        self._server_busy = ""  # why the server refuses sessions, once a row was deferred
        self.counts = RunCounts()
        self._started = time.monotonic()

    def run(self) -> RunCounts:
        """Send every due row once (with the in-run retries), then return the counts."""
        lanes = self._lanes = [_Lane(SmtpConnection(self.smtp)) for _ in range(self.connections)]
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._selector.register(self._wake_in, selectors.EVENT_READ, None)
        self._pool = ThreadPoolExecutor(self.connections, thread_name_prefix="smtp-open")
        try:
            with LedgerSession(self.store, self.campaign_id, self.list_id) as session:
                self._session = session
                self._loop()
        finally:
            self._halted = True
            for lane in lanes:
                if lane.opening is not None:
                    lane.connection.abort_open()
            self._pool.shutdown(wait=True)  # the aborted opens end at once
            with ThreadPoolExecutor(len(lanes), thread_name_prefix="smtp-quit") as closer:
                closer.map(lambda lane: lane.connection.close(), lanes)
            self._selector.close()
            self._wake_in.close()
            self._wake_out.close()
            self.counts.connections_opened = sum(
                lane.connection.connections_opened for lane in lanes
            )
        return self.counts

    # -- the loop --

    def _loop(self) -> None:
        lanes = self._lanes
        exhausted = False
        last_beat = time.monotonic()
        while True:
            self._check_stop()
            free = [lane for lane in lanes if lane.row is None and not lane.retired]
            want = 0 if self._halted or exhausted or self._server_busy else len(free)
            self._next_claim = None
            if want and self._limiter.interval:
                want = self._rate_limited_claims()
            beat = time.monotonic() - last_beat >= self.tuning.heartbeat_seconds
            rechecks = [lane for lane in lanes if self._due_for_recheck(lane)]
            if self._items or want or beat or rechecks:
                now = self.tuning.clock()
                results = [self._result(item, now) for item in self._items]
                self._items = []
                want = 0 if self._halted else want  # a fatal outcome just recorded
                if not self._halted and any(r.status == QUEUED for r in results):
                    exhausted = False  # a row handed back (a retired lane) goes out later
                step = self._session.step(
                    results,
                    want,
                    now,
                    self.runner if beat else None,
                    recheck=[lane.row.id for lane in rechecks if lane.row is not None],
                )
                if beat:
                    last_beat = time.monotonic()
                # committed: now it may be reported, and the claimed rows may go out
                self._count(results, step.skipped)
                if want and len(step.claimed) < want:
                    exhausted = True
                for lane, row in zip(free, step.claimed, strict=False):
                    lane.row, lane.message, lane.retries = row, None, 0
                for lane in rechecks:
                    lane.recheck = False
                    if lane.row is not None and lane.row.id in step.dropped:
                        log.info("not retrying delivery %d: its reader left", lane.row.id)
                        lane.row = lane.message = None
                if self._server_busy and not exhausted:
                    exhausted = True
                    self._defer_the_rest(now, self._server_busy)
            if all(lane.row is None for lane in lanes) and (exhausted or self._halted):
                return
            self._rate_wait = 0.0
            for lane in lanes:
                self._advance(lane)
            if self._items:
                continue  # record them before waiting
            self._wait(last_beat)

    def _defer_the_rest(self, now: datetime, why: str) -> None:
        """The server keeps refusing sessions: defer every queued row to a later run."""
        deferred = self._session.defer_queued(
            now, now + backoff(1, self.send_config), f"not tried: {why}"
        )
        log.warning("%s; %d messages deferred to a later run", why, deferred)
        self.counts.deferred += deferred

    def _rate_limited_claims(self) -> int:
        """Under --rate, how many rows to claim now: one when it may go at once and no
        claimed row is ready and only waiting for the limiter, else none (and when the
        next slot comes, in ``_next_claim``). A row claimed early would wait unchecked
        while its reader might unsubscribe."""
        now = time.monotonic()
        held = any(
            lane.row is not None
            and lane.exchange is None
            and lane.opening is None
            and not lane.recheck
            and now >= lane.resume_at
            for lane in self._lanes
        )
        if held:
            return 0  # that row's own wait for the limiter wakes the loop
        wait = self._limiter.ready_in()
        if wait > 0:
            self._next_claim = now + wait
            return 0
        return 1

    def _check_stop(self) -> None:
        if self.stop.is_set() and not self._halted:
            log.info("stop requested: finishing the messages in flight")
            self.counts.stopped = True
            self._halted = True

    def _wait(self, last_beat: float) -> None:
        """Block until a socket is ready, a connection opened, or a deadline passed, and
        act on it; outcomes land in ``self._items``."""
        lanes = self._lanes
        now = time.monotonic()
        until = [last_beat + self.tuning.heartbeat_seconds, now + _STOP_POLL_SECONDS]
        if self._next_claim is not None:
            until.append(self._next_claim)
        for lane in lanes:
            if lane.exchange is not None:
                until.append(lane.exchange.deadline)
            elif lane.row is not None and lane.opening is None:
                until.append(max(lane.resume_at, now + self._rate_wait))
        timeout = max(0.0, min(until) - now)
        for key, _events in self._selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    self._wake_in.recv(4096)
                continue
            lane = key.data
            assert lane.exchange is not None
            lane.exchange.pump()
            self._watch(lane)
        now = time.monotonic()
        for lane in lanes:
            if lane.exchange is not None and now >= lane.exchange.deadline:
                lane.exchange.expire()
                self._watch(lane)
            if lane.opening is not None and lane.opening.done():
                self._opened(lane)

    # -- one lane --

    def _advance(self, lane: _Lane) -> None:
        """Move a lane that waits for the loop: start its row's transaction, or open its
        connection first, or (halted) hand its row back."""
        row = lane.row
        if row is None or lane.exchange is not None:
            return
        if self._halted:  # also while its session opens: that may hang till the timeout
            self._items.append(_Returned(row))
            lane.row = lane.message = None
            if lane.opening is not None:
                lane.connection.abort_open()
            return
        if lane.opening is not None:
            return
        if time.monotonic() < lane.resume_at or lane.recheck:
            return
        if lane.connection.needs_open:
            lane.opening = self._pool.submit(lane.connection.open)
            lane.opening.add_done_callback(self._wake)
            return
        recipient = Recipient(row.subscriber_id, row.email, row.name, row.attributes)
        try:
            if lane.message is None:
                data = self.template.personalise(recipient, message_key=str(row.id))
                lane.message = (self.template.envelope_sender(recipient), data)
            wait = self._limiter.try_take()
            if wait > 0:
                self._rate_wait = wait
                return
            # personalise() writes CRLF line ends only and never starts a line with "."
            # (tests/mail/ holds it to that): no need to scan 40 KB twice more
            lane.exchange = lane.connection.begin(
                lane.message[0], [row.email], lane.message[1], wire_ready=True
            )
        except ValueError as exc:  # an address or name SMTP cannot carry
            self._done(lane, Outcome(row.email, Status.PERMANENT, None, "5.1.3", str(exc)))
            return
        exchange = lane.exchange
        exchange.pump()  # the envelope goes out now, not after the next select
        if exchange.done:
            self._end(lane, exchange)
        else:
            self._selector.register(exchange.sock, exchange.wants(), lane)

    def _watch(self, lane: _Lane) -> None:
        """Follow the lane's exchange after a pump: new socket events, or its end."""
        exchange = lane.exchange
        assert exchange is not None
        if exchange.done:
            self._selector.unregister(exchange.sock)
            self._end(lane, exchange)
        else:
            self._selector.modify(exchange.sock, exchange.wants(), lane)

    def _end(self, lane: _Lane, exchange: Exchange) -> None:
        """The lane's transaction is over: its outcome, a reconnect, or a stop."""
        lane.exchange = None
        row = lane.row
        assert row is not None
        try:
            outcome = lane.connection.finish(exchange)[0]
        except RetryOnNewConnection:
            # a reused connection closed before answering: nothing was delivered
            log.info("%s closed a reused connection; reconnecting", self.smtp.display)
            return  # needs_open is true now: the next _advance reopens
        except DeliveryError as exc:  # the sender refused: every message would be
            self._fatal(lane, exc)
            return
        self._connected = True
        self._done(lane, outcome)

    def _opened(self, lane: _Lane) -> None:
        """The lane's session attempt ended: go on, retry later, or stop the run."""
        future, lane.opening = lane.opening, None
        row = lane.row
        assert future is not None
        error = future.exception()
        if error is None:
            self._connected = True
            return
        if row is None:  # handed back when the run halted; the error is moot
            return
        if not isinstance(error, DeliveryError):
            log.error("unexpected error while connecting", exc_info=error)
            error = DeliveryError(f"unexpected error while connecting: {error}")
        trouble = Outcome(row.email, Status.TRANSIENT, None, "", str(error))
        if isinstance(error, ServerBusyError):
            others = [other for other in self._lanes if other is not lane and not other.retired]
            if any(
                other.connection.is_open and not other.connection.needs_open for other in others
            ):
                # a cap on connections per client: go on with the ones it allows
                log.warning("%s; going on with one connection fewer", error)
                lane.retired = True
                self._items.append(_Returned(row))
                lane.row = lane.message = None
                return
            if any(other.opening is not None for other in others):
                self._done(lane, trouble)  # the others will tell: try again shortly
                return
            if self._connected and lane.retries >= self.tuning.reconnect_attempts:
                # busy for a while (a restart, a maintenance window): not the reader's
                # fault, not a reason to stop; a later run tries again, this row and
                # (see _loop) every row still queued, rather than each in vain now
                self._items.append(_Done(row, replace(trouble, code=421)))
                lane.row = lane.message = None
                self._server_busy = str(error)
                return
        # never connected in this run (wrong host, password) or reconnecting keeps
        # failing: the whole run stops; a server that worked gets a few tries
        if not self._connected or lane.retries >= self.tuning.reconnect_attempts:
            self._fatal(lane, error)
            return
        self._done(lane, trouble)

    def _done(self, lane: _Lane, outcome: Outcome) -> None:
        """The server answered for the lane's row (or could not): retry or record."""
        row = lane.row
        assert row is not None
        if is_connection_trouble(outcome) and lane.retries < self.tuning.reconnect_attempts:
            lane.retries += 1
            delay = min(
                self.tuning.reconnect_backoff * 2 ** (lane.retries - 1),
                self.tuning.reconnect_backoff_cap,
            )
            log.info("%s; retrying in %.2f s (%d)", outcome, delay, lane.retries)
            lane.resume_at = time.monotonic() + delay
            lane.recheck = True  # the reader may leave meanwhile: ask the ledger again
            return
        self._items.append(_Done(row, outcome))
        lane.row = lane.message = None

    def _fatal(self, lane: _Lane, error: DeliveryError) -> None:
        assert lane.row is not None
        self._items.append(_Fatal(lane.row, error))
        lane.row = lane.message = None
        self._halted = True

    def _due_for_recheck(self, lane: _Lane) -> bool:
        """Whether the lane's row waited out a backoff and needs the claim checks again."""
        return (
            lane.recheck
            and lane.row is not None
            and not lane.busy
            and not self._halted
            and time.monotonic() >= lane.resume_at
        )

    def _wake(self, _future: object = None) -> None:
        """Interrupt the loop's select (called from the pool's threads)."""
        with contextlib.suppress(OSError):
            self._wake_out.send(b"x")

    # -- recording --

    def _result(self, item: _Item, now: datetime) -> Result:
        if isinstance(item, _Done):
            return result_for(item.row, item.outcome, now, self.send_config)
        if isinstance(item, _Fatal) and self.counts.fatal is None:
            self.counts.fatal = item.error
            self._halted = True
        return Result(item.row.id, QUEUED)

    def _count(self, results: list[Result], skipped: int) -> None:
        counts = self.counts
        counts.skipped += skipped
        for result in results:
            if result.status == SENT:
                counts.sent += 1
            elif result.status == FAILED:
                counts.failed += 1
                counts.bounced += result.bounce
            elif result.status == DEFERRED:
                counts.deferred += 1
            elif result.status == UNKNOWN:
                counts.unknown += 1
        if self.progress is not None and (results or skipped):
            self.progress(
                SendProgress(
                    total=self.total,
                    sent=counts.sent,
                    failed=counts.failed,
                    deferred=counts.deferred,
                    skipped=counts.skipped,
                    unknown=counts.unknown,
                    elapsed=time.monotonic() - self._started,
                )
            )
