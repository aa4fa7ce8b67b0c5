"""One reused SMTP connection: sessions opened and recycled, transactions, outcomes.

``SmtpConnection`` is one connection with one owner at a time. It opens the session
with ``session.open_session`` (blocking, rare), then runs each transaction as an
``exchange.Exchange`` on the non-blocking socket. ``send`` drives one exchange to its
end; the ledger loop (``deliver.lanes``) drives one per connection side by side on one
event loop. The message bytes are sent as they are (dot-stuffed), so what was DKIM-signed
is what arrives. ``send`` returns one ``outcome.Outcome`` per recipient.

After a failed transaction the connection is RSET; after a 421 or a drop it is closed
and the next ``send`` reconnects. A connection is closed after
``messages_per_connection`` messages (Yahoo drops connections past its own limit). A
reused connection found dead before any reply (idle timeout) is reopened and the message
retried once, which cannot duplicate since the server accepted nothing yet.
``send`` raises DeliveryError only for what concerns the whole run, never one
recipient: no connection can be opened (server unreachable, TLS or certificate failure,
login rejected) or MAIL FROM is refused with a 5xx (every message would be). Recipients
of that call have no outcome then and stay pending in the ledger.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
from collections.abc import Sequence

from newsletter.errors import DeliveryError

from .envelope import Envelope
from .exchange import Exchange, drive
from .outcome import Outcome, Status, reply_text
from .session import Extensions, close_quietly, open_session
from .settings import SmtpSettings

log = logging.getLogger(__name__)

_QUIT_TIMEOUT = 5.0


# Not a NewsletterError: a signal caught by the sender, which reconnects; never reaches the CLI.
class RetryOnNewConnection(Exception):
    """A reused connection died or said 421 before answering anything of a transaction:
    nothing was delivered, so the same transaction may go again on a new connection."""


class SmtpConnection:
    """One reused SMTP connection (not thread-safe: one owner at a time).

    ``send(mail_from, recipients, data)`` opens the connection on first use, reconnects
    after drops, 421s and every ``messages_per_connection`` messages, and waits for the
    outcome. An owner juggling several connections in one thread (``deliver.lanes``)
    uses ``begin`` -> an ``Exchange`` it drives by socket readiness -> ``finish``, and
    opens or recycles connections itself (``open``, ``needs_open``). Use as a context
    manager or call ``close``. ``connections_opened`` counts sessions for reporting.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.connections_opened = 0
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_connection = 0
        self._extensions = Extensions()
        self._tcp: socket.socket | None = None  # the TCP socket of the session opening
        self._aborted = False

    def _opening_on(self, sock: socket.socket) -> None:
        # a descriptor of our own for the same connection: STARTTLS and implicit TLS wrap
        # (and detach) the socket smtplib made, and shutting ours ends theirs too
        self._tcp = socket.fromfd(sock.fileno(), sock.family, sock.type)
        if self._aborted:
            self._shut(self._tcp)

    def _opened_or_failed(self) -> None:
        tcp, self._tcp = self._tcp, None
        if tcp is not None:
            tcp.close()

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def abort_open(self) -> None:
        """From another thread: make an ``open`` blocked on a silent server (no greeting,
        a stalled TLS or AUTH exchange) fail now instead of after the timeout, and any
        later ``open`` fail at once: the connection is finished."""
        self._aborted = True
        sock = self._tcp
        if sock is not None:
            self._shut(sock)  # closed already if the open ended: then a no-op

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """Whether a session is currently established."""
        return self._smtp is not None

    @property
    def needs_open(self) -> bool:
        """Whether the next transaction needs a new session first (none yet, or this one
        reached ``messages_per_connection``)."""
        limit = self.settings.messages_per_connection
        return self._smtp is None or self._sent_on_connection >= limit

    @property
    def pipelining(self) -> bool:
        """Whether the current (or last) session uses ESMTP PIPELINING."""
        return self._extensions.pipelining

    # -- session setup --

    def open(self) -> None:
        """Connect, EHLO, STARTTLS/TLS and AUTH as configured; DeliveryError if impossible.

        Closes the current session first, if any. Blocking: a caller with other
        connections to serve runs it in another thread.
        """
        self.close()
        settings = self.settings
        if self._aborted:
            raise DeliveryError(f"{settings.display}: connection abandoned (the run is stopping)")
        try:
            self._smtp, self._extensions = open_session(settings, on_socket=self._opening_on)
        finally:
            self._opened_or_failed()
        self._sent_on_connection = 0
        self.connections_opened += 1
        log.debug("connected to %s (pipelining=%s)", settings.display, self.pipelining)

    def close(self) -> None:
        """QUIT politely if a session is open, then close the socket."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        with contextlib.suppress(smtplib.SMTPException, OSError):
            if smtp.sock is not None:
                # transactions left it non-blocking; a polite QUIT is not worth a long wait
                smtp.sock.settimeout(min(self.settings.timeout, _QUIT_TIMEOUT))
                smtp.quit()
        close_quietly(smtp)

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        close_quietly(smtp)

    # -- sending --

    def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> list[Outcome]:
        """Deliver ``data`` (CRLF wire bytes) from ``mail_from`` to ``recipients``.

        Returns one Outcome per recipient, in order. Raises DeliveryError when no
        connection can be opened or the sender is refused (5xx to MAIL FROM); ValueError
        for malformed addresses or data.
        """
        if not recipients:
            return []
        envelope = Envelope.of(mail_from, recipients, data)
        if self.needs_open:
            self.open()
        try:
            outcomes = self.finish(drive(self._start(envelope)))
        except RetryOnNewConnection:
            # the server closed a reused connection before answering (idle timeout, its
            # own per-connection limit): nothing was accepted, so one more try is safe
            log.info("%s closed a reused connection; reconnecting", self.settings.display)
            self.open()
            outcomes = self.finish(drive(self._start(envelope)))
        if self._smtp is not None and self.needs_open:
            self.close()
        return outcomes

    def begin(
        self, mail_from: str, recipients: Sequence[str], data: bytes, *, wire_ready: bool = False
    ) -> Exchange:
        """Start one transaction on the open session -> its Exchange (nothing sent until
        its first ``pump``). ValueError for malformed addresses or data; ``wire_ready``
        as for ``dot_stuff``."""
        return self._start(Envelope.of(mail_from, recipients, data, wire_ready=wire_ready))

    def _start(self, envelope: Envelope) -> Exchange:
        """The Exchange for ``envelope`` on the open session (already decided, sending
        nothing, when an address needs SMTPUTF8 the server lacks)."""
        smtp = self._smtp
        if smtp is None or smtp.sock is None:
            raise RuntimeError("a transaction needs an open session")
        extensions = self._extensions
        commands = envelope.commands(size=extensions.size, eightbit=extensions.eightbit)
        smtp.sock.setblocking(False)
        exchange = Exchange(
            smtp.sock,
            envelope.recipients,
            commands,
            envelope.payload,
            pipelining=extensions.pipelining,
            reused=self._sent_on_connection > 0,
            timeout=self.settings.timeout,
        )
        if envelope.unicode and not extensions.smtputf8:
            reply = "the server does not support SMTPUTF8, needed for a non-ASCII address"
            exchange.results = {
                i: Outcome(r, Status.PERMANENT, None, "5.6.7", reply)
                for i, r in enumerate(envelope.recipients)
            }
            exchange.cancel()
        return exchange

    def finish(self, exchange: Exchange) -> list[Outcome]:
        """The outcomes of a done ``exchange``, one per recipient in order.

        Closes a broken connection. Raises RetryOnNewConnection when a reused connection
        failed before any reply (reopen and begin again), DeliveryError when the sender
        was refused.
        """
        if exchange.broken:
            self._drop()
        if exchange.lost:
            raise RetryOnNewConnection
        if exchange.refused is not None:
            code, text = exchange.refused
            raise DeliveryError(
                f"{self.settings.display} refused the sender: {code} {reply_text(text)}",
                hint="check sender.address and sender.bounce_address, and the server's policy",
            )
        self._sent_on_connection += 1
        return [exchange.results[i] for i in range(len(exchange.recipients))]
