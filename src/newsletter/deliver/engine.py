"""The ledger loop: claim rows, send them on N reused connections, record every outcome.

One event loop
--------------
The run is one asyncio loop in the calling thread: one task per SMTP connection
(``lanes.Lane``, see ``lanes``) and one coordinator, the only code touching the
database. Opening a session runs in a small thread pool; nothing else does.

Each turn of the coordinator collects the outcomes the lanes handed back, and in ONE
write transaction records them and claims (marks ``sending``) one new row for each
lane that asks for one; it commits, reports progress, and only then gives the lanes
their rows. So:

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

Every message is personalised (its own token, name, Message-ID), so each transaction
carries one recipient: ``send.recipients_per_transaction`` (any value >= 1) is always
honoured. ``send.messages_per_connection`` is enforced per connection, ``--rate`` by
one limiter for the run. What each outcome means for its row: ``outcomes``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import InterfaceError, OperationalError

from newsletter.aio import run_async
from newsletter.config import Send
from newsletter.errors import StoreError
from newsletter.mail.template import MessageTemplate
from newsletter.smtp.connection import SmtpConnection
from newsletter.smtp.ratelimit import RateLimiter
from newsletter.smtp.settings import SmtpSettings
from newsletter.store import Store
from newsletter.store.deliveries import (
    DEFERRED,
    FAILED,
    QUEUED,
    SENT,
    UNKNOWN,
    Result,
)
from newsletter.store.ledger import LedgerSession, Sender
from newsletter.store.senders import Beat

from .lanes import IDLE, READY, RECHECK, Done, Fatal, Item, Lane, Lanes, Retry
from .outcomes import backoff, result_for
from .reports import SendProgress
from .run_state import RunCounts, SendTuning

log = logging.getLogger(__name__)

# Longest wait of the coordinator: how soon a stop request (Ctrl-C, shutdown) is
# noticed while every connection is quiet.
_STOP_POLL_SECONDS = 0.2


@dataclass
class LedgerRun:
    """One pass over a campaign's due rows (see the module docstring).

    ``run()`` returns the counts; it never raises for a recipient's problem, and
    reports a run-stopping DeliveryError (or StoreError: the database was lost) in
    ``RunCounts.fatal``. ``sender`` is this process's lease among the campaign's
    senders; ``rate`` limits this sender, ``campaign_rate`` the campaign, shared with
    the other live senders (each takes its part, updated on every heartbeat).
    ``senders`` is how many were live when this one joined, itself included.
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
    sender: Sender | None = None
    campaign_rate: float = 0.0
    senders: int = 1

    def __post_init__(self) -> None:
        self._limiter = RateLimiter(self._rate_for(self.senders), clock=self.tuning.monotonic)
        self._news: asyncio.Future[None] | None = None  # the coordinator's wake-up
        self._exhausted = False  # the last claim found fewer rows than asked for
        self._looked = False  # a beat after finding nothing to claim has been taken
        self._others_busy = False  # the last beat saw other live senders with rows left
        self._live = self.senders
        self._last_beat = 0.0
        self._database_lost = False
        # the campaign's rows left at the last look, and this run's done count then
        self._left_at_look, self._done_at_look = self.total, 0
        self.counts = RunCounts()
        self._started = time.monotonic()

    def _rate_for(self, live: int) -> float:
        """This sender's limit with ``live`` senders sharing the campaign's (0 = none)."""
        share = self.campaign_rate / max(live, 1) if self.campaign_rate > 0 else 0.0
        limits = [r for r in (self.rate, share) if r > 0]
        return min(limits) if limits else 0.0

    def run(self) -> RunCounts:
        """Send every due row once (with the in-run retries), then return the counts."""
        connections = [SmtpConnection(self.smtp) for _ in range(self.connections)]
        opener = ThreadPoolExecutor(self.connections, thread_name_prefix="smtp-open")
        try:
            with LedgerSession(self.store, self.campaign_id, self.list_id, self.sender) as session:
                self._session = session
                run_async(self._main(connections, opener))
        finally:
            for connection in connections:
                if not connection.is_open:
                    connection.abort_open()  # an open still running in the pool ends at once
            opener.shutdown(wait=True)
            with ThreadPoolExecutor(len(connections), thread_name_prefix="smtp-quit") as closer:
                closer.map(lambda connection: connection.close(), connections)
            self.counts.connections_opened = sum(c.connections_opened for c in connections)
        return self.counts

    async def _main(self, connections: list[SmtpConnection], opener: ThreadPoolExecutor) -> None:
        """The lanes' tasks and the coordinator, until every row is done or handed back."""
        retry = Retry(
            self.tuning.reconnect_attempts,
            self.tuning.reconnect_backoff,
            self.tuning.reconnect_backoff_cap,
        )
        self._lanes = Lanes(connections, self.template, self._limiter, retry, opener, self._wake)
        self._tasks = [asyncio.create_task(self._lanes.drive(lane)) for lane in self._lanes.all]
        for task in self._tasks:
            task.add_done_callback(lambda _task: self._wake())
        try:
            await self._coordinate()
            await asyncio.gather(*self._tasks)
        finally:
            self._lanes.halt()

    # -- the coordinator --

    async def _coordinate(self) -> None:
        """Record outcomes and claim rows in one transaction per turn, until done."""
        lanes = self._lanes
        self._last_beat = time.monotonic()
        while True:
            self._check_stop()
            free = [lane for lane in lanes.all if lane.asks(IDLE)]
            rechecks = [lane for lane in lanes.all if lane.asks(RECHECK)]
            self._raise_if_a_lane_failed()
            claiming = not (lanes.halted or self._exhausted or lanes.server_busy)
            want, next_claim = len(free) if claiming else 0, None
            if want and self._limiter.interval:
                want, next_claim = self._rate_limited_claims()
            beat = time.monotonic() - self._last_beat >= self.tuning.heartbeat_seconds
            if lanes.items or want or beat or rechecks:
                self._step(free, want, rechecks, beat)
            if self._database_lost:
                lanes.close()  # nothing more can be recorded: the lanes end what they hold
                return
            if all(lane.row is None for lane in lanes.all) and (self._exhausted or lanes.halted):
                if lanes.halted:
                    lanes.close()
                    return
                if not self._looked:
                    # before leaving, one more beat: a dead sender's rows, or rows another
                    # sender handed back, may be waiting
                    self._looked = True
                    self._step([], 0, [], True, look=True)
                    continue
                if not self._others_busy:
                    lanes.close()
                    return
                # other senders still hold rows: look again at the next heartbeat, so
                # the campaign is not left running should one of them die
            until = [self._last_beat + self.tuning.heartbeat_seconds]
            if next_claim is not None:
                until.append(time.monotonic() + next_claim)
            await self._wait(min(until) - time.monotonic())

    def _step(
        self, free: list[Lane], want: int, rechecks: list[Lane], beat: bool, look: bool = False
    ) -> None:
        """One ledger transaction: record the outcomes handed back, claim ``want`` rows
        for ``free`` lanes, check the rows of ``rechecks`` again; then hand them out."""
        lanes = self._lanes
        now = self.tuning.clock()
        results = [self._result(item, now) for item in lanes.items]
        lanes.items = []
        want = 0 if lanes.halted else want  # a fatal outcome just recorded
        if not lanes.halted and any(result.status == QUEUED for result in results):
            self._exhausted = False  # a row handed back (a retired lane) goes out later
        stale_before = now - timedelta(seconds=self.tuning.stale_after_seconds)
        began = time.perf_counter()
        try:
            step = self._session.step(
                results,
                want,
                now,
                stale_before if beat else None,
                recheck=[lane.row.id for lane in rechecks if lane.row is not None],
                count_left=look or self._looked,
            )
        except (OperationalError, InterfaceError) as exc:
            self._lose_database(exc)
            return
        self.counts.ledger_steps += 1
        self.counts.ledger_seconds += time.perf_counter() - began
        if beat:
            self._last_beat = time.monotonic()
        # committed: now it may be reported, and the claimed rows may go out
        self._count(results, step.skipped)
        if step.beat is not None:
            self._heard(step.beat)
        if want and len(step.claimed) < want:
            self._exhausted = True
        for lane, row in zip(free, step.claimed, strict=False):
            lane.row = row
            lanes.answer(lane, row, READY)
        for lane in rechecks:
            kept = lane.row is not None and lane.row.id not in step.dropped
            lanes.answer(lane, kept, READY)
        if lanes.server_busy and not self._exhausted:
            self._exhausted = True
            self._defer_the_rest(now, lanes.server_busy)

    def _heard(self, found: Beat) -> None:
        """Act on a heartbeat: stop if the lease was lost, take up a dead sender's rows,
        share the campaign's rate among the live senders, refresh the campaign's progress."""
        if not found.held:
            log.warning(
                "this sender was silent past %g s and its rows were given to the others; "
                "stopping after the messages in flight",
                self.tuning.stale_after_seconds,
            )
            self.counts.stopped = True
            self._lanes.halt()
            return
        if found.recovered:
            log.warning(
                "%d messages a stopped sender had in flight are back in the queue; sending "
                "them (a recipient whose server had taken one gets it twice)",
                found.recovered,
            )
        # rows left: ones to claim (put back by a dead sender, handed back by a stopped
        # one), or ones other live senders hold, which this sender waits out
        self._others_busy = found.live > 1 and bool(found.left)
        if (found.recovered or found.left) and not self._lanes.server_busy:
            self._exhausted = False
        if found.live != self._live and self.campaign_rate > 0:
            self._limiter.set_rate(self._rate_for(found.live))
        self._live = found.live
        if found.left is not None:
            self._left_at_look, self._done_at_look = found.left, self._done()

    def _lose_database(self, exc: Exception) -> None:
        """The database is gone: stop claiming and sending; nothing more is recorded."""
        reason = " ".join(str(exc.orig if hasattr(exc, "orig") else exc).split())[:200]
        log.error("lost the database while sending: %s", reason)
        self._database_lost = True
        self._lanes.items = []
        self.counts.fatal = StoreError(
            f"lost the database while sending ({reason})",
            hint="the messages in flight go back to the queue when this sender's lease "
            f"expires ({self.tuning.stale_after_seconds:g} s, or at once for a sender on "
            "this machine)",
        )
        self._lanes.halt()

    def _campaign_done(self) -> int:
        """Of the campaign's rows due when this run started, how many are done by now
        by every sender (as of the last heartbeat, plus this run's since)."""
        done = self.total - self._left_at_look + self._done() - self._done_at_look
        return max(0, min(done, self.total))

    def _done(self) -> int:
        counts = self.counts
        return counts.sent + counts.failed + counts.deferred + counts.skipped + counts.unknown

    def _raise_if_a_lane_failed(self) -> None:
        """A lane's task ended with an error (a bug): end the run with it, not hang."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("a connection's task failed") from task.exception()

    def _rate_limited_claims(self) -> tuple[int, float | None]:
        """Under --rate, how many rows to claim now and, for none, in how many seconds
        to look again: one when it may go at once and no claimed row is ready and only
        waiting for the limiter. A row claimed early would wait unchecked while its
        reader might unsubscribe."""
        if any(lane.state == READY for lane in self._lanes.all):
            return 0, None  # that row's own wait for the limiter comes first
        wait = self._limiter.ready_in()
        return (0, wait) if wait > 0 else (1, None)

    def _defer_the_rest(self, now: datetime, why: str) -> None:
        """The server keeps refusing sessions: defer every queued row to a later run,
        unless other senders (with relays of their own) are there to send them."""
        if self._live > 1:
            log.warning("%s; leaving the rest to the other senders", why)
            return
        deferred = self._session.defer_queued(
            now, now + backoff(1, self.send_config), f"not tried: {why}"
        )
        log.warning("%s; %d messages deferred to a later run", why, deferred)
        self.counts.deferred += deferred

    def _check_stop(self) -> None:
        if self.stop.is_set() and not self._lanes.halted:
            log.info("stop requested: finishing the messages in flight")
            self.counts.stopped = True
            self._lanes.halt()

    def _wake(self) -> None:
        """A lane has news (an outcome, a request): the coordinator takes its turn."""
        if self._news is not None and not self._news.done():
            self._news.set_result(None)

    async def _wait(self, timeout: float) -> None:
        """Sleep until a lane has news, ``timeout`` passes, or a stop may be due."""
        loop = asyncio.get_running_loop()
        self._news = loop.create_future()
        timer = loop.call_later(max(0.0, min(timeout, _STOP_POLL_SECONDS)), self._wake)
        try:
            await self._news
        finally:
            timer.cancel()
            self._news = None
        # two loop turns (a poll of the sockets, then the lanes it woke) let every outcome
        # already waiting in a socket join this turn's commit
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    # -- recording --

    def _result(self, item: Item, now: datetime) -> Result:
        if isinstance(item, Done):
            return result_for(item.row, item.outcome, now, self.send_config)
        if isinstance(item, Fatal) and self.counts.fatal is None:
            self.counts.fatal = item.error
            self._lanes.halt()
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
                    campaign_done=self._campaign_done(),
                )
            )
