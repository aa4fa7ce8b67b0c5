"""The embedded local SMTP server: real delivery with no setup.

When ``NEWSLETTER_SMTP_URL`` is unset, ``newsletter send`` starts an ``EmbeddedServer``
(aiosmtpd on 127.0.0.1, a free port chosen by the OS) and delivers to it through the
same SMTP client as a real server would get. Each message accepted is stored, exactly
as received, as one ``.eml`` file in the workspace's ``outbox/`` folder (ignored by
git): written to a temporary name and renamed, so a reader never sees half a message.
The envelope (MAIL FROM, RCPT TO) is kept in ``EmbeddedServer.messages``; the file holds
only the message bytes, so DKIM still verifies on it.

The server advertises PIPELINING (aiosmtpd reads commands in order from its stream, so
pipelined commands are safe), 8BITMIME and SMTPUTF8.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.workspace import Workspace

from .settings import TLS_NONE, SmtpSettings

log = logging.getLogger(__name__)

OUTBOX_DIR = "outbox"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9@._+-]+")


def outbox_dir(workspace: Workspace) -> Path:
    """Where the embedded server stores delivered messages: ``<workspace>/outbox``."""
    return workspace.root / OUTBOX_DIR


@dataclass(frozen=True)
class StoredMessage:
    """One message the embedded server accepted: its file and its envelope."""

    path: Path
    mail_from: str
    recipients: tuple[str, ...]


class OutboxHandler:
    """aiosmtpd handler writing each accepted message to ``folder`` as an .eml file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.messages: list[StoredMessage] = []
        self._counter = itertools.count(1)
        # two servers in one second (a send, then a second one) must not reuse names
        self._run = secrets.token_hex(3)
        self._lock = threading.Lock()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        """Add PIPELINING to aiosmtpd's EHLO reply (it handles pipelined input already)."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message atomically; 250 with the file name, 451 if the disk fails."""
        data: bytes = envelope.original_content or b""
        recipients = tuple(envelope.rcpt_tos)
        first = _UNSAFE_NAME.sub("_", recipients[0] if recipients else "unknown")[:80]
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}-{self._run}-{next(self._counter):06d}-{first}.eml"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".incoming-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temp, self.folder / name)
            except BaseException:
                os.unlink(temp)
                raise
        except OSError as exc:
            log.error("outbox: cannot store a message in %s: %s", self.folder, exc)
            return "451 4.3.0 cannot store the message now"
        with self._lock:
            self.messages.append(StoredMessage(self.folder / name, envelope.mail_from, recipients))
        return f"250 2.0.0 stored as {name}"

    def stored(self) -> list[StoredMessage]:
        """Messages stored so far, oldest first (a copy: the server thread adds more)."""
        with self._lock:
            return list(self.messages)


# aiosmtpd (with asyncio and attrs) is slow to import, so only a made server imports it:
# a send to NEWSLETTER_SMTP_URL, or one that ends before delivering, never needs it.
if TYPE_CHECKING:
    from aiosmtpd.controller import Controller


@cache
def free_port_controller() -> type[Controller]:
    """aiosmtpd's threaded Controller, able to listen on port 0 (a free port)."""
    from aiosmtpd.controller import Controller

    class FreePortController(Controller):
        # aiosmtpd has no option for port 0: its start-up self-test connects to
        # ``self.port``, and this is the one hook between binding and that connect
        def _trigger_server(self) -> None:
            server: Any = self.server  # an asyncio.Server, which has .sockets
            if server is not None and self.port == 0:
                self.port = server.sockets[0].getsockname()[1]
            super()._trigger_server()

    return FreePortController


class EmbeddedServer:
    """A local SMTP server storing messages in ``folder``; use as a context manager.

    ``url`` is its ``smtp://127.0.0.1:PORT``; ``settings()`` the matching SmtpSettings;
    ``messages`` what it has stored so far.
    """

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.folder = folder
        self.handler = OutboxHandler(folder)
        self._controller = free_port_controller()(self.handler, hostname=host, port=port)

    @property
    def host(self) -> str:
        """The address it listens on."""
        return str(self._controller.hostname)

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        return int(self._controller.port)

    @property
    def url(self) -> str:
        """``smtp://host:port`` to hand to the sender."""
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[StoredMessage]:
        """Messages stored so far, oldest first (a copy)."""
        return self.handler.stored()

    def settings(
        self, *, messages_per_connection: int = 100, timeout: float = 60.0
    ) -> SmtpSettings:
        """Client settings for this server (plain SMTP on loopback)."""
        return SmtpSettings(
            host=self.host,
            port=self.port,
            security=TLS_NONE,
            timeout=timeout,
            messages_per_connection=messages_per_connection,
        )

    def start(self) -> None:
        """Start listening (in a background thread)."""
        self._controller.start()
        log.info("embedded SMTP server on %s storing into %s", self.url, self.folder)

    def stop(self) -> None:
        """Stop listening and end the background thread."""
        self._controller.stop()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
