"""``serve --workers N``: N processes answering on one listening socket, one of them
running the scheduler, and the parent that supervises them.

The parent does what can fail before any worker exists, as one process would: it opens
the database (creating or upgrading it once, not N times at once), builds the app (a
broken page template fails here) and binds the socket (a taken port is a one-line
error, port 0 a free port, and the ready line shows the real URL). It then closes its
database: workers are forked, and a SQLAlchemy engine or SQLite connection must never
be used on both sides of a fork. Each worker opens its own store after it starts and
serves the inherited socket with ``ServeServer``: the same uvicorn settings, connection
limits and trusted proxies as a single process. Forking (rather than uvicorn's
``Multiprocess``, which spawns and pickles its target) lets a worker inherit the loaded
workspace, the logging set-up and the socket as they are.

Every worker holds the write end of its own status pipe; the parent reads the other
end: "ready" once the worker accepts connections, "error ..." when it cannot start, and
end-of-file when the worker is gone. So the parent sleeps in one ``select`` until
something happens. Worker 1 runs the scheduler; a worker that dies after it was ready
is started again in its slot (so a new worker 1 runs the scheduler, only once the old
one is reaped), after a pause that grows while workers keep dying young. One that dies
before it was ready ends ``serve`` with its error: a start that failed once would fail
again.

SIGINT or SIGTERM to the parent sends SIGTERM to every worker, which stops uvicorn
gracefully and the scheduler's send after its messages in flight (``ServeServer.run``);
the parent returns once all are gone. Workers also watch a pipe only the parent writes
to: should the parent be killed outright, they stop by themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from newsletter.errors import NewsletterError
from newsletter.store import open_store_for
from newsletter.web.accesslog import log as access_log
from newsletter.web.app import WebApp
from newsletter.web.listen import bind_socket
from newsletter.web.server import (
    BACKLOG,
    GRACEFUL_SHUTDOWN_SECONDS,
    SEND_STOP_SECONDS,
    ServeServer,
    local_url,
)
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

# The worker that runs the scheduler (and its replacement after a crash).
SCHEDULER_SLOT = 1
# A worker not accepting connections this long after its start has failed to start.
STARTUP_SECONDS = 60.0
# Once asked to stop, workers still running after this are killed: the scheduler's send
# and uvicorn's open requests have their own, shorter, deadlines.
STOP_SECONDS = SEND_STOP_SECONDS + GRACEFUL_SHUTDOWN_SECONDS + 15.0
# A worker that dies within this many seconds of being ready delays its replacement by
# a pause that doubles each time, up to the maximum: no fork storm when every start dies.
QUICK_DEATH_SECONDS = 10.0
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 30.0
# A worker's exit code when it could not start (uvicorn's own code for that).
STARTUP_FAILED = 3


def serve_workers(
    ws: Workspace,
    *,
    host: str,
    port: int,
    count: int,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``ws`` on ``host``:``port`` from ``count`` worker processes until SIGINT or
    SIGTERM; ``on_ready(url)`` once every worker accepts connections.

    Raises NewsletterError before forking (unusable database, broken template, port
    taken) or when a worker could not start (after stopping the others).
    """
    with open_store_for(ws) as store:
        WebApp(ws, store)  # the templates build; the store is closed before any fork
    sock = bind_socket(host, port, backlog=BACKLOG)
    try:
        WorkerPool(ws, sock, count, url=local_url(sock, host), on_ready=on_ready).run()
    finally:
        sock.close()


@dataclass
class _Worker:
    """One running worker, as the parent sees it."""

    slot: int
    pid: int
    status: int  # the parent's (read) end of the worker's status pipe
    started: float
    ready_at: float | None = None
    error: str | None = None
    unread: bytes = b""


class WorkerPool:
    """``count`` forked workers serving ``sock`` for ``ws``, supervised from ``run()``.

    Call ``run()`` from the main thread of a process with no other threads (forking
    copies only the calling thread, and any lock another one held stays locked).
    """

    def __init__(
        self,
        ws: Workspace,
        sock: socket.socket,
        count: int,
        *,
        url: str,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        self.ws = ws
        self.sock = sock
        self.count = count
        self.url = url
        self._on_ready = on_ready
        self._workers: dict[int, _Worker] = {}  # by status pipe
        self._restart_at: dict[int, float] = {}  # slot -> when to start it again
        self._pause: dict[int, float] = {}  # slot -> its next pause after a quick death
        self._signals: list[int] = []
        self._stop_deadline: float | None = None
        self._failure: NewsletterError | None = None
        self._announced = False
        self._selector = selectors.DefaultSelector()
        # made by run(): workers read the one end until the parent, sole holder of the
        # other, is gone; signals wake the parent's select through the second pipe
        self._alive_r = self._alive_w = self._wake_r = self._wake_w = -1

    # -- the parent ---------------------------------------------------------------------------

    def run(self) -> None:
        """Start the workers and supervise them until SIGINT or SIGTERM has stopped them
        all (once per pool). Raises NewsletterError when a worker could not start."""
        self._alive_r, self._alive_w = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        # the wakeup fd first: a signal noted by the handler always ends the next select
        wakeup = signal.set_wakeup_fd(self._wake_w)
        handlers = {sig: signal.signal(sig, self._note_signal) for sig in _STOP_SIGNALS}
        try:
            for slot in range(1, self.count + 1):
                self._start(slot)
            while self._workers or self._restart_at:
                self._turn()
        finally:
            self._kill_all()  # only after an error of our own: nobody is left otherwise
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(wakeup)
            self._selector.close()
            for fd in (self._alive_r, self._alive_w, self._wake_r, self._wake_w):
                os.close(fd)
        if self._failure is not None:
            raise self._failure

    def _note_signal(self, signum: int, frame: FrameType | None) -> None:
        # only noted: the wakeup fd ends the select, and _turn acts outside the handler
        self._signals.append(signum)

    def _turn(self) -> None:
        """Wait for a worker's news, a signal or the next deadline, then act on it."""
        deadlines = [*self._restart_at.values()]
        if self._stop_deadline is None:
            deadlines += [w.started + STARTUP_SECONDS for w in self._starting()]
        else:
            deadlines.append(self._stop_deadline)
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        for key, _ in self._selector.select(timeout):
            if key.fd == self._wake_r:
                os.read(self._wake_r, 512)
            else:
                self._read_status(self._workers[key.fd])
        if self._signals and self._stop_deadline is None:
            log.info("stopping %d workers", len(self._workers))
            self._stop()
        self._check_deadlines(time.monotonic())

    def _starting(self) -> list[_Worker]:
        return [w for w in self._workers.values() if w.ready_at is None]

    def _check_deadlines(self, now: float) -> None:
        """Start the workers due again; fail one that is slow to start; kill the ones
        slow to stop (they are reaped as their pipes close)."""
        for slot, when in list(self._restart_at.items()):
            if when <= now:
                del self._restart_at[slot]
                self._start(slot)
        if self._stop_deadline is None:
            for worker in self._starting():
                if now >= worker.started + STARTUP_SECONDS:
                    label = _label(worker.slot, self.count)
                    self._fail(f"{label} did not start within {STARTUP_SECONDS:g} s")
        elif now >= self._stop_deadline and self._workers:
            log.warning(
                "%d workers still running after %g s: killing them",
                len(self._workers),
                STOP_SECONDS,
            )
            self._kill_all()
            self._stop_deadline = now + STOP_SECONDS

    def _read_status(self, worker: _Worker) -> None:
        """Take in what ``worker`` wrote: "ready", "error ...", or its end (it is gone)."""
        data = os.read(worker.status, 4096)
        if not data:
            self._reap(worker)
            return
        *lines, worker.unread = (worker.unread + data).split(b"\n")
        for line in lines:
            word, _, rest = line.decode("utf-8", "replace").partition(" ")
            if word == "ready":
                worker.ready_at = time.monotonic()
            elif word == "error":
                worker.error = rest
        if not self._announced and len(self._workers) == self.count and not self._starting():
            self._announced = True
            if self._on_ready is not None:
                self._on_ready(self.url)

    def _reap(self, worker: _Worker) -> None:
        """``worker`` closed its pipe: wait for its exit, then start another or stop."""
        self._selector.unregister(worker.status)
        os.close(worker.status)
        del self._workers[worker.status]
        _, status = os.waitpid(worker.pid, 0)
        how = _exit_described(os.waitstatus_to_exitcode(status))
        label = _label(worker.slot, self.count)
        if self._stop_deadline is not None:
            log.debug("%s (pid %d) %s", label, worker.pid, how)
        elif worker.ready_at is None:
            self._fail(worker.error or f"{label} stopped before it was ready ({how})")
        else:
            if time.monotonic() - worker.ready_at >= QUICK_DEATH_SECONDS:
                self._pause[worker.slot] = 0.0
            pause = self._pause.get(worker.slot, 0.0)
            self._pause[worker.slot] = min(MAX_PAUSE_SECONDS, max(FIRST_PAUSE_SECONDS, 2 * pause))
            log.warning(
                "%s (pid %d) %s; starting another%s",
                label,
                worker.pid,
                how,
                f" in {pause:g} s" if pause else "",
            )
            self._restart_at[worker.slot] = time.monotonic() + pause

    def _fail(self, message: str) -> None:
        """End serve with ``message`` (the first failure wins) once the workers stopped."""
        if self._failure is None:
            self._failure = NewsletterError(message)
        self._stop()

    def _stop(self) -> None:
        """Ask every worker to stop gracefully; start none any more."""
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + STOP_SECONDS
        self._restart_at.clear()
        for worker in self._workers.values():
            _signal(worker.pid, signal.SIGTERM)

    def _kill_all(self) -> None:
        for worker in self._workers.values():
            _signal(worker.pid, signal.SIGKILL)

    def _start(self, slot: int) -> None:
        """Fork the worker for ``slot``; in the child, serve and never return."""
        status_r, status_w = os.pipe()
        # what the parent buffered must not be written a second time by the child
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(status_r)
                code = self._worker(slot, status_w)
            except BaseException:
                log.exception("stopped by an error")
            finally:
                os._exit(code)  # never back into the parent's stack (its finally, atexit)
        os.close(status_w)
        worker = _Worker(slot, pid, status_r, started=time.monotonic())
        self._workers[status_r] = worker
        self._selector.register(status_r, selectors.EVENT_READ)

    # -- a worker -----------------------------------------------------------------------------

    def _worker(self, slot: int, status_w: int) -> int:
        """Serve as worker ``slot`` until told to stop -> the process's exit code."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        self._selector.close()  # the fd only: the parent's registrations stay as they are
        for fd in (self._alive_w, self._wake_r, self._wake_w, *self._workers):
            os.close(fd)
        label = _label(slot, self.count)
        name_log_lines(label)
        try:
            server = ServeServer(self.ws, sock=self.sock, scheduler=slot == SCHEDULER_SLOT)
        except KeyboardInterrupt:
            return 0  # stopped while starting
        except NewsletterError as exc:
            _tell(status_w, f"error {exc}")
            return STARTUP_FAILED
        except Exception as exc:
            log.exception("could not start")
            _tell(status_w, f"error {label} could not start: {exc}")
            return STARTUP_FAILED
        watch = threading.Thread(
            target=_stop_when_gone, args=(self._alive_r, server), name="parent", daemon=True
        )
        watch.start()

        def ready(url: str) -> None:
            log.info("ready (pid %d)", os.getpid())
            _tell(status_w, "ready")

        try:
            server.run(on_ready=ready)
        except SystemExit as exc:  # uvicorn's own exit when its start failed
            return exc.code if isinstance(exc.code, int) else 1
        except Exception:
            log.exception("stopped by an error")
            return 1
        return 0


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def name_log_lines(label: str) -> None:
    """Start every log line of this process with ``label`` ("worker 2/4: ..."), except
    the access lines, which stay as a single process writes them."""
    make_record = logging.getLogRecordFactory()

    def named(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if record.name != access_log.name:
            record.msg = f"{label}: {record.msg}"
        return record

    logging.setLogRecordFactory(named)


def _stop_when_gone(alive: int, server: ServeServer) -> None:
    """In a worker: once the parent is gone (its end of ``alive`` closes), stop."""
    os.read(alive, 1)
    log.warning("the serve parent process is gone: stopping")
    server.ask_to_stop()


def _tell(status_w: int, line: str) -> None:
    """Write one line on a worker's status pipe (short: written whole at once)."""
    os.write(status_w, line.replace("\n", " ").encode("utf-8")[:2000] + b"\n")


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone already: its pipe tells the parent
        os.kill(pid, sig)


def _label(slot: int, count: int) -> str:
    return f"worker {slot}/{count}"


def _exit_described(code: int) -> str:
    """``os.waitstatus_to_exitcode``'s ``code`` in words: "exited with code 1", "was
    killed by SIGKILL"."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"
