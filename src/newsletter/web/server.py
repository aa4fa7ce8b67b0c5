"""The ``newsletter serve`` process: uvicorn serving the app, the scheduler beside it.

``ServeServer(ws, host, port)`` opens the store, builds the app (failing at once on a
broken page template), binds its socket (so ``url`` is known before serving) and, when
run, starts a background thread that every ``serve.scheduler_interval_seconds`` starts
the scheduled sends that are due (``schedule.run_due``) and forgets expired double
opt-in requests. ``run()`` serves until Ctrl-C, SIGTERM or ``stop()``.

``run_server`` is the ``serve`` command: one such process, or with ``workers`` above 1
a parent supervising that many of them on one socket (``web.workers``).

uvicorn trusts ``X-Forwarded-For`` only from ``serve.trusted_proxies``, so behind a
reverse proxy on the same machine the rate limits see the real client address.
"""

from __future__ import annotations

import logging
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from newsletter.errors import NewsletterError
from newsletter.schedule.due import RunReport, SendRunner, run_due
from newsletter.store import Store, open_store_for
from newsletter.web.app import WebApp
from newsletter.web.connections import (
    ConnectionLimits,
    RepeatFilter,
    guarded_protocol,
    limit_repeats,
)
from newsletter.web.listen import BackgroundServer, bind_socket
from newsletter.web.mail import Postman
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 5
# Longer than a reverse proxy keeps idle upstream connections (nginx: 60 s): if we closed
# first, a POST the proxy sends on a connection we are closing would fail, unretried.
KEEP_ALIVE_SECONDS = 75
# A scheduled send stops after its messages in flight: give those time to be answered.
SEND_STOP_SECONDS = 60.0
# Expired pending subscriptions are looked for at most this often.
EXPIRY_EVERY_SECONDS = 3600.0
# File descriptors kept free of client connections: the database, SMTP, worker threads.
SPARE_FILES = 64
# Connections the kernel queues for accept() (all workers share one listening socket).
BACKLOG = 2048
# Loggers that repeat one line per refused accept(), slow client or bad request.
NOISY_LOGGERS = ("asyncio", "uvicorn.error", "newsletter.web.connections")


def connection_limits(ws: Workspace) -> ConnectionLimits:
    """The [serve] slow-client limits; the connection cap stays below the open-file limit."""
    serve = ws.config.serve
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = serve.max_connections
    if soft != resource.RLIM_INFINITY and cap > soft - SPARE_FILES:
        cap = max(2, soft - SPARE_FILES)
        log.warning(
            "serve.max_connections %d is above what %d open files allow: using %d",
            serve.max_connections,
            soft,
            cap,
        )
    return ConnectionLimits(serve.header_timeout_seconds, serve.body_timeout_seconds, cap)


class Housekeeper:
    """The background loop of ``serve``: due sends and pending-request expiry.

    ``tick()`` runs one round in the caller's thread (tests call it directly);
    ``start()`` / ``stop()`` run rounds every ``interval`` seconds in a thread.
    """

    def __init__(
        self,
        web: WebApp,
        *,
        interval: float,
        runner: SendRunner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.web = web
        self.interval = interval
        self.runner = runner
        self._clock = clock
        self._last_expiry: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> RunReport:
        """One ``run_due`` round; old pending requests are looked for hourly only."""
        now = self._clock()
        expire = self._last_expiry is None or now - self._last_expiry >= EXPIRY_EVERY_SECONDS
        if expire:
            self._last_expiry = now
        return run_due(
            self.web.ws, runner=self.runner, store=self.web.store, stop=self._stop, expire=expire
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # keep answering links even if a round fails
                log.exception("scheduler round failed; trying again in %g s", self.interval)
            self._stop.wait(self.interval)

    def start(self) -> None:
        """Run rounds in a background thread; the first at once (catch up after downtime)."""
        # the one line that says which process runs the scheduler (serve --workers)
        log.info("scheduler started (every %g s)", self.interval)
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop: a running send ends after its messages in flight and goes back to the
        queue (resumed at the next start) -> False if still busy at ``timeout``."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        if not alive:
            self._thread = None
        return not alive


class _Server(uvicorn.Server):
    """uvicorn, telling when it accepts connections (it has no event for that)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM (a service manager's stop) raises KeyboardInterrupt like Ctrl-C.

    uvicorn shuts down gracefully on either, then raises the signal again with the
    handler it found: this one, so ``run`` ends the way Ctrl-C ends it instead of the
    process dying before the scheduler's send has stopped. Main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ServeServer(BackgroundServer):
    """``newsletter serve`` for ``ws`` on ``host``:``port`` (0 = a free port), or on
    ``sock``, a listening socket bound already (a ``serve --workers`` worker's).

    ``url`` is the local address it listens on; ``public_url`` the base URL its links
    use. ``scheduler=False`` serves pages only (benchmarks, tests, all workers but one).
    ``ready`` is set once uvicorn accepts connections.
    """

    thread_name = "serve"

    def __init__(
        self,
        ws: Workspace,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sock: socket.socket | None = None,
        store: Store | None = None,
        postman: Postman | None = None,
        scheduler: bool = True,
        runner: SendRunner | None = None,
    ) -> None:
        super().__init__()
        self.ws = ws
        self._own_store = store is None
        self.store = store or open_store_for(ws)
        try:
            self.web = WebApp(ws, self.store, postman=postman)
            self._socket = sock or bind_socket(host, port, backlog=BACKLOG)
        except BaseException:
            if self._own_store:
                self.store.close()
            raise
        # as given when bound here ("localhost" stays); else the address it is bound to
        self.url = local_url(self._socket, None if sock else host)
        self.public_url = ws.base_url
        self.housekeeper = (
            Housekeeper(
                self.web, interval=ws.config.serve.scheduler_interval_seconds, runner=runner
            )
            if scheduler
            else None
        )
        limit_repeats(NOISY_LOGGERS, RepeatFilter())
        config = uvicorn.Config(
            self.web.starlette,
            http=guarded_protocol(connection_limits(ws)),
            log_config=None,
            access_log=False,
            lifespan="on",
            # uvloop when installed (it is a dependency where it builds): less CPU per request
            loop="auto",
            proxy_headers=True,
            forwarded_allow_ips=list(ws.config.serve.trusted_proxies),
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = _Server(config, self._announce)

    def run(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until Ctrl-C, SIGTERM or ``stop()``; returns normally either way."""
        self._on_ready = on_ready
        if self.housekeeper is not None:
            self.housekeeper.start()
        try:
            with sigterm_as_interrupt():
                self._server.run(sockets=[self._socket])
        except KeyboardInterrupt:
            # uvicorn shuts down gracefully on SIGINT, then re-raises it: that is our exit
            log.info("serve stopped")
        finally:
            if self.housekeeper is not None and not self.housekeeper.stop(
                timeout=SEND_STOP_SECONDS
            ):
                log.warning("a scheduled send did not stop in time; it resumes at the next start")
            self._release()

    def _release(self) -> None:
        """Give back the socket, and the store if it is ours."""
        self._socket.close()
        if self._own_store:
            self.store.close()


def local_url(sock: socket.socket, host: str | None = None) -> str:
    """``http://host:port`` of the listening ``sock``; ``host`` as given, else the
    address it is bound to (IPv6 in brackets)."""
    bound, port = sock.getsockname()[:2]
    shown = host or bound
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def warn_unless_https(ws: Workspace) -> None:
    """Log a warning when the links ``serve`` answers are not https."""
    if not ws.base_url.startswith("https://"):
        log.warning(
            "base URL %s is not https: mail providers ignore one-click unsubscribe "
            "links that are not https (set NEWSLETTER_BASE_URL)",
            ws.base_url,
        )


def run_server(
    ws: Workspace,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """``newsletter serve``: answer links and run scheduled sends until Ctrl-C or SIGTERM.

    ``host``/``port``/``workers`` default to ``serve.host``/``serve.port``/``serve.workers``.
    ``on_ready(url)`` is called once connections are accepted (by every worker). Raises
    NewsletterError before serving (port taken, broken template, unusable database,
    fewer than 1 worker), or when a worker could not start.
    """
    host = host or ws.config.serve.host
    port = ws.config.serve.port if port is None else port
    workers = ws.config.serve.workers if workers is None else workers
    if workers < 1:
        raise NewsletterError(
            f"--workers must be at least 1, not {workers}",
            hint="1 serves from one process; more answer links on more cores",
        )
    warn_unless_https(ws)
    if workers > 1:
        from newsletter.web.workers import serve_workers

        serve_workers(ws, host=host, port=port, count=workers, on_ready=on_ready)
        return
    ServeServer(ws, host=host, port=port).run(on_ready=on_ready)
