"""What ``serve`` and ``preview`` share around uvicorn: the listening socket they hand
it, and running it in a background thread until stopped.

Binding the socket ourselves (instead of letting uvicorn do it) means port 0 works, the
URL is known before the server starts, and a taken port is a one-line error.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    import uvicorn


def bind_socket(host: str, port: int, *, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0 = a free port), or NewsletterError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: only then does asyncio set TCP_NODELAY on accepted connections,
    # without which each answer (headers and body, two writes) waits for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        taken = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise NewsletterError(
            f"cannot listen on {host}:{port}: {reason}",
            hint="pick another --port (0 picks a free one), or stop the process using it"
            if taken
            else "check --host: an address of this machine, such as 127.0.0.1",
        ) from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class BackgroundServer:
    """``ready`` once serving, ``start_in_thread`` and ``stop`` for a uvicorn server.

    A subclass sets ``url`` and ``_server`` (its ``uvicorn.Server``), defines ``run()``
    (serve until stopped), has the server call ``_announce`` once it accepts connections,
    and may say in ``_release`` what ``stop`` gives back when ``run`` never ran.
    """

    thread_name = "server"
    # how long stop() waits for the background thread (None: as long as it takes)
    join_seconds: float | None = None
    url: str
    _server: uvicorn.Server

    def __init__(self, on_ready: Callable[[str], None] | None = None) -> None:
        self.ready = threading.Event()
        self._on_ready = on_ready
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until Ctrl-C or ``stop()``."""
        raise NotImplementedError

    def _announce(self) -> None:
        self.ready.set()
        if self._on_ready is not None:
            self._on_ready(self.url)

    def start_in_thread(self, timeout: float = 30.0) -> None:
        """Serve from a background thread; returns once ``ready`` (tests and benchmarks)."""
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self.ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"{self.thread_name} not ready after {timeout} s")

    def ask_to_stop(self) -> None:
        """Ask the server to shut down gracefully, from any thread; returns at once."""
        self._server.should_exit = True

    def stop(self) -> None:
        """Ask the server to shut down (from any thread) and wait for a background thread."""
        self.ask_to_stop()
        if self._thread is not None:
            self._thread.join(self.join_seconds)
            self._thread = None
        else:
            self._release()

    def _release(self) -> None:
        """Give back what ``run`` releases as it ends; nothing unless a subclass says so."""
