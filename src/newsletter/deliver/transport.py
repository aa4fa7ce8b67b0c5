"""Where a send's messages go, and how a run is told to stop.

``open_transport`` gives the configured SMTP server, or starts the embedded local one
(``newsletter.smtp.embedded``, messages land in ``outbox/``) for the block when
``NEWSLETTER_SMTP_URL`` is unset. ``stop_on_sigint`` turns a first Ctrl-C or SIGTERM
into a stop after the messages in flight.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from newsletter.smtp.embedded import EmbeddedServer, outbox_dir
from newsletter.smtp.settings import SmtpSettings
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)


def smtp_target(ws: Workspace, smtp: SmtpSettings | None) -> str:
    """Where messages go, for people: ``smtp://host:port`` or the embedded server's folder."""
    if smtp is not None:
        return smtp.display
    return f"the embedded local SMTP server (messages stored in {outbox_dir(ws)})"


@contextlib.contextmanager
def open_transport(
    ws: Workspace, smtp: SmtpSettings | None
) -> Iterator[tuple[SmtpSettings, Path | None]]:
    """``smtp`` as it is, or the embedded server started for the block -> (settings, outbox)."""
    if smtp is not None:
        yield smtp, None
        return
    send = ws.config.send
    folder = outbox_dir(ws)
    with EmbeddedServer(folder) as server:
        yield (
            server.settings(
                messages_per_connection=send.messages_per_connection, timeout=send.timeout_seconds
            ),
            folder,
        )


@contextlib.contextmanager
def stop_on_sigint(stop: threading.Event, enabled: bool) -> Iterator[None]:
    """While the block runs, a first Ctrl-C (or SIGTERM, what service managers and
    ``kill`` send) sets ``stop``: finish what is in flight, then end; a second one
    interrupts at once. Only in the main thread, only if ``enabled``."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        again = "Ctrl-C again" if signum == signal.SIGINT else "the same signal again"
        log.warning("stopping after the messages in flight (%s to abort at once)", again)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
