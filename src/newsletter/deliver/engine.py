"""The ledger loop: claim rows, send them on N reused connections, record every outcome.

Threads
-------
One *dispatcher* (the calling thread) owns the database; ``connections`` *workers* each
own one ``SmtpConnection``. A worker holds at most one row at a time: it takes a row
from the inbox, builds its bytes (token, slots, VERP), sends it, puts the outcome on
the results queue, and only then takes the next row.

The dispatcher loops: it collects the outcomes that have arrived, and in ONE write
transaction records them and claims (marks ``sending``) one new row for each worker
that is waiting; it commits, reports progress, and only then hands the claimed rows
to the workers. So:

- a row's bytes go out only after its ``sending`` mark is committed, and an outcome is
  reported (progress, summary) only after it is committed;
- outcomes from several workers share one commit (group commit): one fsync per group,
  not two per message;
- at any moment at most ``connections`` rows are ``sending``: a worker's next row is
  claimed in the same transaction that records its previous outcome. After a
  ``kill -9`` the rerun sends those rows again; the ones whose bytes the server had
  taken arrive twice, so at most ``connections`` people get a duplicate, nobody is
  missed. (A row still waiting in the inbox at the kill was never sent: resending it
  is no duplicate.)

Every message is personalised (its own token, name, Message-ID), so each transaction
carries one recipient: ``send.recipients_per_transaction`` (any value >= 1) is always
honoured. ``send.messages_per_connection`` is enforced by each worker's connection.

Outcomes (see ``newsletter.transport``)
----------------------------------------
``ACCEPTED`` -> sent. ``PERMANENT`` (5xx) -> failed with code and reply, never retried;
an enhanced code meaning "no such mailbox" (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10, 5.2.1)
also suppresses the subscriber as bounced. A bare 5xx without such a code (a policy
or spam block) does not: that would punish the reader for the sender's reputation.
``UNKNOWN`` (the final "." went out, no reply came) -> unknown: maybe delivered, so
never resent automatically (a resend could duplicate) and never counted as failed.
``TRANSIENT``: a 421 or a dropped connection is about the connection, not the
recipient: the worker reconnects after a short backoff (``SendTuning``) and tries the
same message again, a few times, before deferring it. Any other 4xx (greylisting, a
full mailbox) defers the row at once. A deferred row gets ``next_attempt_at = now +
min(retry_cap_seconds, retry_floor_seconds * 2 ** (attempts - 1))`` and is retried by
a later run once due; past ``retry_lifetime_hours`` since its first attempt it fails.

A ``DeliveryError`` (no connection at all, login rejected, sender refused) stops the
run at once: no more claims, the rows in flight go back to ``queued``, nothing of them
is marked sent. Once a connection has worked in this run, a failure to reconnect is
retried like a drop first (a server restarting, "421 too busy" at the greeting).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from newsletter.config import Send
from newsletter.errors import DeliveryError
from newsletter.message import MessageTemplate, Recipient
from newsletter.store import Store, utcnow
from newsletter.store.deliveries import (
    DEFERRED,
    FAILED,
    QUEUED,
    SENT,
    UNKNOWN,
    Claimed,
    LedgerSession,
    Result,
)
from newsletter.transport import Outcome, RateLimiter, SmtpConnection, SmtpSettings, Status

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
        self._inbox: queue.SimpleQueue[Claimed | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._limiter = RateLimiter(self.rate)
        self._connected = threading.Event()  # some connection worked in this run
        self._halt = threading.Event()  # no more sending: stop asked, or a fatal error
        self._opened_lock = threading.Lock()
        self.counts = RunCounts()
        self._started = time.monotonic()

    # -- workers --

    def _worker(self) -> None:
        connection = SmtpConnection(self.smtp)
        try:
            while (row := self._inbox.get()) is not None:
                try:
                    item = self._deliver(connection, row)
                except BaseException as exc:  # never leave the dispatcher waiting
                    log.exception("unexpected error sending delivery %d", row.id)
                    item = _Fatal(row, DeliveryError(f"unexpected error while sending: {exc}"))
                self._results.put(item)
        finally:
            connection.close()
            with self._opened_lock:
                self.counts.connections_opened += connection.connections_opened

    def _deliver(self, connection: SmtpConnection, row: Claimed) -> _Item:
        recipient = Recipient(row.subscriber_id, row.email, row.name, row.attributes)
        try:
            data = self.template.personalise(recipient, message_key=str(row.id))
            mail_from = self.template.envelope_sender(recipient)
        except ValueError as exc:
            return _Done(row, Outcome(row.email, Status.PERMANENT, None, "5.1.3", str(exc)))
        retries = 0
        while True:
            if self._halt.is_set():
                return _Returned(row)
            self._limiter.wait()
            try:
                outcome = connection.send(mail_from, [row.email], data)[0]
            except DeliveryError as exc:
                # the sender refused (connection still open), or never connected in this
                # run, or reconnecting keeps failing: the whole run stops
                if connection.is_open or not self._connected.is_set():
                    return _Fatal(row, exc)
                if retries >= self.tuning.reconnect_attempts:
                    return _Fatal(row, exc)
                outcome = Outcome(row.email, Status.TRANSIENT, None, "", str(exc))
            except ValueError as exc:  # an address SMTP cannot carry
                outcome = Outcome(row.email, Status.PERMANENT, None, "5.1.3", str(exc))
            else:
                self._connected.set()
            if is_connection_trouble(outcome) and retries < self.tuning.reconnect_attempts:
                retries += 1
                delay = min(
                    self.tuning.reconnect_backoff * 2 ** (retries - 1),
                    self.tuning.reconnect_backoff_cap,
                )
                log.info("%s; retrying in %.2f s (%d)", outcome, delay, retries)
                if self._halt.wait(delay):
                    return _Returned(row)
                continue
            return _Done(row, outcome)

    # -- the dispatcher --

    def run(self) -> RunCounts:
        """Send every due row once (with the in-run retries), then return the counts."""
        workers = [
            threading.Thread(target=self._worker, name=f"send-{n}", daemon=True)
            for n in range(self.connections)
        ]
        for worker in workers:
            worker.start()
        try:
            with LedgerSession(self.store, self.campaign_id, self.list_id) as session:
                self._session = session
                self._dispatch()
        finally:
            self._halt.set()  # workers in a backoff give their row back at once
            for _ in workers:
                self._inbox.put(None)
            for worker in workers:
                worker.join()
        return self.counts

    def _dispatch(self) -> None:
        waiting, held = self.connections, 0
        exhausted = False
        last_beat = time.monotonic()
        while True:
            self._check_stop()
            stopping = self._halt.is_set()
            items: list[_Item] = []
            if held and (waiting == 0 or exhausted or stopping):
                with contextlib.suppress(queue.Empty):
                    items.append(self._results.get(timeout=self.tuning.heartbeat_seconds))
            while True:
                try:
                    items.append(self._results.get_nowait())
                except queue.Empty:
                    break
            held -= len(items)
            waiting += len(items)
            now = self.tuning.clock()
            results = [self._result(item, now) for item in items]
            self._check_stop()
            stopping = self._halt.is_set()
            want = 0 if stopping or exhausted else waiting
            beat = time.monotonic() - last_beat >= self.tuning.heartbeat_seconds
            claimed: list[Claimed] = []
            skipped = 0
            if results or want or beat:
                claimed, skipped = self._session.step(
                    results, want, now, self.runner if beat else None
                )
                if beat:
                    last_beat = time.monotonic()
                # committed: now it may be reported, and the claimed rows may go out
                self._count(results, skipped)
                if want and len(claimed) < want:
                    exhausted = True
                for row in claimed:
                    self._inbox.put(row)
                waiting -= len(claimed)
                held += len(claimed)
            if held == 0 and (exhausted or stopping):
                return

    def _check_stop(self) -> None:
        if self.stop.is_set() and not self._halt.is_set():
            log.info("stop requested: finishing the messages in flight")
            self.counts.stopped = True
            self._halt.set()

    def _result(self, item: _Item, now: datetime) -> Result:
        if isinstance(item, _Done):
            return result_for(item.row, item.outcome, now, self.send_config)
        if isinstance(item, _Fatal) and self.counts.fatal is None:
            self.counts.fatal = item.error
            self._halt.set()
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
