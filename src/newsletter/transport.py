"""SMTP client side: the server URL, TLS and AUTH, reused pipelined connections, outcomes.

``NEWSLETTER_SMTP_URL``
-----------------------
``smtps://[user:pass@]host[:465]``  implicit TLS.
``smtp://[user:pass@]host[:587]``   STARTTLS required (abort if the server does not offer
                                    it, unless ``send.allow_insecure`` and no AUTH).
``smtp://localhost[:25]``           a local relay: plain SMTP, allowed on loopback only.
Query options: ``?cafile=PATH`` trusts a private CA (tests, internal relays);
``?tls=starttls`` forces STARTTLS on loopback, ``?tls=none`` allows plain SMTP
(only on loopback, or anywhere with ``send.allow_insecure``). Certificates are always
verified (``ssl.create_default_context``), the user and password are URL-decoded, AUTH
is never sent over an unencrypted connection, and no message ever shows the password.

Connections and outcomes
------------------------
``SmtpConnection`` is one reused connection with one owner at a time. It uses smtplib
for the session setup (EHLO, STARTTLS, AUTH: blocking, rare), then runs each
transaction as an ``Exchange`` on the non-blocking socket: when the server offers ESMTP
PIPELINING (RFC 2920), MAIL, RCPT and DATA go in one write, then the message: two round
trips per message instead of four. ``send`` drives one exchange to its end; the ledger
loop (``deliver.engine``) drives one per connection side by side in one thread. The
message bytes are sent as they are (dot-stuffed), so what was DKIM-signed is what
arrives.

``send`` returns one ``Outcome`` per recipient:

- ``ACCEPTED``  250 after the final ".": delivered to the server, never send again.
- ``PERMANENT`` a 5xx for this recipient (code, enhanced status, reply): never retry.
- ``TRANSIENT`` a 4xx, a 421, or the connection lost before the final "." was sent:
                nothing was delivered, retry later.
- ``UNKNOWN``   the final "." was sent but no reply came (timeout or drop): the server
                may have taken the message. The ledger must record it as "maybe sent"
                and never count it as a failure to retry blindly (a retry may duplicate;
                the Message-ID is reused so receivers can de-duplicate).

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
import enum
import functools
import ipaddress
import logging
import re
import selectors
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.errors import ConfigError, DeliveryError
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

SMTP_URL_ENV = "NEWSLETTER_SMTP_URL"
TLS_IMPLICIT, TLS_STARTTLS, TLS_NONE = "tls", "starttls", "none"
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")
_URL_HINT = "use smtp://user:pass@host:587, smtps://user:pass@host:465 or smtp://localhost:25"


class Status(enum.Enum):
    """What became of one recipient in one SMTP transaction (see the module docstring)."""

    ACCEPTED = "accepted"
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outcome:
    """The result for one recipient: ``status``, and the server's ``code``,
    ``enhanced`` status ("5.1.1", "" if none) and one-line ``reply`` text."""

    recipient: str
    status: Status
    code: int | None = None
    enhanced: str = ""
    reply: str = ""

    def __str__(self) -> str:
        code = f"{self.code} " if self.code is not None else ""
        return f"{self.recipient}: {self.status.value} ({code}{self.reply})".replace(" ()", "")


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect; ``password`` never appears in repr or messages."""

    host: str
    port: int
    security: str = TLS_STARTTLS
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str | None = None
    timeout: float = 60.0
    messages_per_connection: int = 100
    allow_insecure: bool = False
    local_hostname: str | None = None

    @property
    def display(self) -> str:
        """``smtp[s]://user@host:port`` for messages and logs (no password)."""
        scheme = "smtps" if self.security == TLS_IMPLICIT else "smtp"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1 (where plain SMTP is harmless)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _masked(url: str) -> str:
    """``url`` with any password replaced, for error messages."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def parse_smtp_url(
    url: str,
    *,
    timeout: float = 60.0,
    messages_per_connection: int = 100,
    allow_insecure: bool = False,
) -> SmtpSettings:
    """Parse an SMTP URL (see the module docstring) -> SmtpSettings, or raise ConfigError."""
    where = f"{SMTP_URL_ENV}={_masked(url)}"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: not a valid URL", hint=_URL_HINT) from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(f"{where}: expected smtp:// or smtps:// with a host", hint=_URL_HINT)
    host = parts.hostname
    username = unquote(parts.username or "")
    password = unquote(parts.password or "")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"cafile", "tls"})
    if unknown:
        raise ConfigError(f"{where}: unknown option {unknown[0]!r}", hint="known: cafile, tls")
    cafile = query.get("cafile", [None])[-1] or None
    loopback = is_loopback(host)
    if scheme == "smtps":
        security = TLS_IMPLICIT
    else:
        default = TLS_NONE if loopback and not username else TLS_STARTTLS
        security = query.get("tls", [default])[-1].lower()
        if security not in (TLS_STARTTLS, TLS_NONE):
            raise ConfigError(f"{where}: tls must be starttls or none", hint=_URL_HINT)
    if security == TLS_NONE and username:
        raise ConfigError(
            f"{where}: a password would travel unencrypted",
            hint="use STARTTLS (drop ?tls=none) or smtps://",
        )
    if security == TLS_NONE and not loopback and not allow_insecure:
        raise ConfigError(
            f"{where}: plain SMTP to a remote host",
            hint="use STARTTLS or smtps://, or set send.allow_insecure = true",
        )
    if port is None:
        port = 465 if security == TLS_IMPLICIT else (587 if security == TLS_STARTTLS else 25)
    return SmtpSettings(
        host=host,
        port=port,
        security=security,
        username=username,
        password=password,
        cafile=cafile,
        timeout=timeout,
        messages_per_connection=messages_per_connection,
        allow_insecure=allow_insecure,
    )


def smtp_settings(workspace: Workspace, url: str | None = None) -> SmtpSettings | None:
    """Settings from ``url`` or NEWSLETTER_SMTP_URL plus [send]; None when neither is set
    (the caller then starts the embedded local server, see ``newsletter.outbox``)."""
    url = url or workspace.env.smtp_url
    if not url:
        return None
    send = workspace.config.send
    return parse_smtp_url(
        url,
        timeout=send.timeout_seconds,
        messages_per_connection=send.messages_per_connection,
        allow_insecure=send.allow_insecure,
    )


# --- the connection ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _tls_context(cafile: str | None) -> ssl.SSLContext:
    """A verifying client context, made once per CA file: loading the system CA store
    costs tens of milliseconds, too much to repeat on every reconnect."""
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(
            f"{SMTP_URL_ENV}: cannot read cafile {cafile} ({exc})",
            hint="give the path of a PEM CA certificate",
        ) from None


@functools.lru_cache(maxsize=1)
def _ehlo_name() -> str:
    """This host's name for EHLO, looked up once (smtplib would ask DNS per connection)."""
    return socket.getfqdn()


class ServerBusyError(DeliveryError):
    """The server answered the greeting with a 4xx ("421 too many connections", "421
    restarting"): no session now, which says nothing about our messages or login."""


class RetryOnNewConnection(Exception):
    """A reused connection died or said 421 before answering anything of a transaction:
    nothing was delivered, so the same transaction may go again on a new connection."""


def _reply_text(message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return " ".join(text.split())[:300]


def _outcome(recipient: str, code: int, message: bytes | str) -> Outcome:
    text = _reply_text(message)
    match = _ENHANCED.match(text)
    if 200 <= code < 300:
        status = Status.ACCEPTED
    elif 500 <= code < 600:
        status = Status.PERMANENT
    else:  # 4xx, and anything unexpected, may work later
        status = Status.TRANSIENT
    return Outcome(recipient, status, code, match.group(1) if match else "", text)


def dot_stuff(data: bytes, *, wire_ready: bool = False) -> bytes:
    """``data`` as SMTP DATA content: lines starting with "." doubled, ending CRLF . CRLF.

    ``data`` must use CRLF line ends only: a bare LF could let a receiver see an end of
    data we did not send (SMTP smuggling), so it raises ValueError. ``wire_ready``
    promises CRLF line ends only and no line starting with "." (what
    ``message.MessageTemplate.personalise`` writes by construction): both scans of the
    whole message are then skipped.
    """
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if wire_ready:
        return data + b".\r\n"
    if data.count(b"\n") != data.count(b"\r\n"):
        raise ValueError("message data must use CRLF line ends only")
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def _address(value: str) -> bytes:
    if not value or any(c in value for c in "<>\r\n ") or len(value) > 320:
        raise ValueError(f"not a bare address: {value!r}")
    return value.encode("utf-8")


@dataclass(frozen=True)
class _Envelope:
    """A message checked and ready for the wire: addresses as bytes, data dot-stuffed."""

    sender: bytes
    recipients: list[str]
    rcpts: list[bytes]
    payload: bytes
    size: int
    unicode: bool

    @classmethod
    def of(
        cls, mail_from: str, recipients: Sequence[str], data: bytes, *, wire_ready: bool = False
    ) -> _Envelope:
        """ValueError for a malformed address or data (see ``dot_stuff``)."""
        sender = _address(mail_from)
        rcpts = [_address(r) for r in recipients]
        unicode = not (sender.isascii() and all(r.isascii() for r in rcpts))
        payload = dot_stuff(data, wire_ready=wire_ready)
        return cls(sender, list(recipients), rcpts, payload, len(data), unicode)


# --- one transaction, driven by socket readiness ----------------------------------------------

_MAX_LINE = 8192  # as smtplib: a longer reply line is a broken server
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

# what an Exchange is waiting for
_ENVELOPE, _BODY, _RESET, _DONE = "envelope", "body", "reset", "done"


class _Replies:
    """Complete SMTP replies out of the bytes received so far: ``feed`` bytes, ``take``
    one ``(code, text)`` reply (continuation lines joined with newlines) or None."""

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def take(self) -> tuple[int, bytes] | None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > _MAX_LINE:
                    raise ConnectionError("reply line too long")
                return None
            line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
            self._lines.append(line)
            if line[3:4] != b"-":
                break
        lines, self._lines = self._lines, []
        head = lines[0][:3]
        code = int(head) if head.isdigit() else -1
        return code, b"\n".join(line[4:].strip(b" \t\r\n") for line in lines)


class Exchange:
    """One MAIL/RCPT/DATA transaction (and the RSET after a failed one) on a connected,
    non-blocking socket, advanced by whoever watches the socket.

    The owner waits until the socket is ready for ``wants()`` (selectors events), then
    calls ``pump()``; past ``deadline`` (``time.monotonic``) it calls ``expire()``. Once
    ``done``, ``SmtpConnection.finish`` turns it into outcomes. With ESMTP PIPELINING
    the envelope goes out in one write (two round trips per message), otherwise one
    command per reply, stopping as early as the blocking client would. Never raises for
    the server's behaviour: replies and failures become the fields read by ``finish``.
    """

    def __init__(
        self,
        sock: socket.socket,
        recipients: Sequence[str],
        commands: list[bytes],
        payload: bytes,
        *,
        pipelining: bool,
        reused: bool,
        timeout: float,
    ) -> None:
        self.sock = sock
        self.recipients = list(recipients)
        self.reused = reused
        self.replies: list[tuple[int, bytes]] = []
        self.results: dict[int, Outcome] = {}
        self.accepted: list[int] = []
        self.final_dot_sent = False
        self.lost = False  # nothing answered on a reused connection: safe to try again
        self.broken = False  # the connection must be closed
        self.refused: tuple[int, bytes] | None = None  # MAIL FROM got a 5xx
        self._commands = commands
        self._payload = payload
        self._pipelining = pipelining
        self._timeout = timeout
        self._reader = _Replies()
        self._out: list[memoryview] = []
        self._dot_queued = False
        self.stage = _ENVELOPE
        self.deadline = time.monotonic() + timeout
        self._queue(b"".join(commands) if pipelining else commands[0])

    @property
    def done(self) -> bool:
        """Whether nothing more is to be sent or read for this transaction."""
        return self.stage == _DONE

    def wants(self) -> int:
        """The selectors events to wait for (0 once done)."""
        if self.done:
            return 0
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if self._out else 0)

    def pump(self) -> None:
        """Send what the socket takes, read what arrived, act on complete replies."""
        if self.done:  # e.g. decided before anything was sent (no SMTPUTF8): send nothing
            return
        try:
            self._flush()
            while not self.done:
                reply = self._reader.take()
                if reply is None:
                    if not self._receive():
                        break
                    continue
                self._on_reply(*reply)
                self._flush()
        except OSError:  # includes ssl.SSLError and socket timeouts
            self._fail()

    def cancel(self) -> None:
        """End the transaction before any of it was sent (the results are set already)."""
        self._out.clear()
        self.stage = _DONE

    def expire(self) -> None:
        """No progress for ``timeout`` seconds: as if the connection dropped."""
        if not self.done:
            log.info("no reply from the server in %g s", self._timeout)
            self._fail()

    # -- input and output --

    def _queue(self, data: bytes) -> None:
        self._out.append(memoryview(data))

    def _flush(self) -> None:
        while self._out:
            try:
                sent = self.sock.send(self._out[0])
            except _WOULD_BLOCK:
                return
            self.deadline = time.monotonic() + self._timeout
            if sent < len(self._out[0]):
                self._out[0] = self._out[0][sent:]
            else:
                self._out.pop(0)
        if self._dot_queued:
            self.final_dot_sent = True  # every byte up to the final "." is with the kernel

    def _receive(self) -> bool:
        """Read what is there -> False when nothing was (wait for the socket again)."""
        got = False
        while True:
            try:
                data = self.sock.recv(65536)
            except _WOULD_BLOCK:
                return got
            if not data:
                raise ConnectionResetError("the server closed the connection")
            self._reader.feed(data)
            self.deadline = time.monotonic() + self._timeout
            got = True
            # TLS may hold decrypted bytes the socket no longer signals; plain sockets
            # are level-triggered, so one read per wake-up is enough
            if not isinstance(self.sock, ssl.SSLSocket) or not self.sock.pending():
                return got

    # -- the protocol --

    def _on_reply(self, code: int, text: bytes) -> None:
        if self.stage == _ENVELOPE:
            self.replies.append((code, text))
            if self._envelope_complete(code):
                self._after_envelope()
            elif not self._pipelining:
                self._queue(self._commands[len(self.replies)])
        elif self.stage == _BODY:
            for index in self.accepted:
                self.results[index] = _outcome(self.recipients[index], code, text)
            self._settle()
        elif self.stage == _RESET:
            self.broken = self.broken or code != 250
            self.stage = _DONE

    def _envelope_complete(self, code: int) -> bool:
        index = len(self.replies) - 1
        if code == 421 or index == len(self._commands) - 1:
            return True  # a 421 means the server is closing: no more replies will come
        if self._pipelining:
            return False
        if index == 0 and code >= 400:
            return True
        # after the last RCPT: without an accepted recipient, DATA is not started
        return index == len(self.recipients) and not any(
            200 <= c < 300 for c, _ in self.replies[1:]
        )

    def _after_envelope(self) -> None:
        replies = self.replies
        if replies[0][0] < 400:
            for index, reply in enumerate(replies[1 : len(self.recipients) + 1]):
                if 200 <= reply[0] < 300:
                    self.accepted.append(index)
                else:
                    self.results[index] = _outcome(self.recipients[index], *reply)
        data_reply = replies[-1] if len(replies) == len(self._commands) else None
        if data_reply is not None and data_reply[0] == 354:
            self._queue(self._payload if self.accepted else b".\r\n")
            self._dot_queued = bool(self.accepted)
            self.stage = _BODY
            return
        if data_reply is not None:
            for index in self.accepted:
                self.results[index] = _outcome(self.recipients[index], *data_reply)
        elif self.accepted and replies[-1][0] == 421:
            for index in self.accepted:
                self.results[index] = _outcome(self.recipients[index], *replies[-1])
        self._settle()

    def _settle(self) -> None:
        """Every reply of the transaction is in: decide the outcomes, RSET if needed."""
        replies = self.replies
        if any(code == 421 for code, _ in replies):
            self.broken = True
            if self.reused and replies[0][0] == 421:
                self.lost = True  # nothing was answered yet: reconnect and try again
                self.stage = _DONE
                return
        if 500 <= replies[0][0] < 600:
            self.refused = replies[0]
        for index, recipient in enumerate(self.recipients):
            if index not in self.results:
                failing = next(((c, m) for c, m in replies if c >= 400), None)
                self.results[index] = (
                    _outcome(recipient, *failing)
                    if failing is not None
                    else Outcome(recipient, Status.TRANSIENT, None, "", "no reply")
                )
        everyone = all(o.status is Status.ACCEPTED for o in self.results.values())
        if self.broken or everyone:
            self.stage = _DONE
        else:
            self._queue(b"RSET\r\n")
            self.stage = _RESET

    def _fail(self) -> None:
        """The connection failed (reset, closed, timed out, TLS error)."""
        self.broken = True
        if self.stage == _RESET:  # the outcomes stand; only the connection is gone
            self.stage = _DONE
            return
        if self.reused and not self.replies:
            self.lost = True
        else:
            for index, recipient in enumerate(self.recipients):
                if index not in self.results:
                    if self.final_dot_sent and index in self.accepted:
                        self.results[index] = Outcome(
                            recipient, Status.UNKNOWN, None, "", "no reply after the message"
                        )
                    else:
                        self.results[index] = Outcome(
                            recipient, Status.TRANSIENT, None, "", "connection lost"
                        )
        self.stage = _DONE


_QUIT_TIMEOUT = 5.0


class _Smtp(smtplib.SMTP):
    """smtplib's client, telling ``on_socket`` the TCP socket as soon as it exists, so
    that another thread can abort a session setup stuck on a silent server."""

    def __init__(self, *args: Any, on_socket: Callable[[socket.socket], None], **kwargs: Any):
        self._on_socket = on_socket
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        self._on_socket(sock)
        return sock


class _SmtpSsl(smtplib.SMTP_SSL):
    """``_Smtp`` for implicit TLS: the TCP socket is told before the TLS handshake."""

    def __init__(self, *args: Any, on_socket: Callable[[socket.socket], None], **kwargs: Any):
        self._on_socket = on_socket
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        tcp = smtplib.SMTP._get_socket(self, host, port, timeout)  # type: ignore[attr-defined]
        # wrapping detaches ``tcp``: tell the TLS socket (same descriptor) before its
        # handshake, which is what may hang
        host_name: str = self._host  # type: ignore[attr-defined]
        sock = self.context.wrap_socket(
            tcp, server_hostname=host_name, do_handshake_on_connect=False
        )
        self._on_socket(sock)
        try:
            sock.do_handshake()
        except BaseException:
            sock.close()  # smtplib never saw it: nobody else would
            raise
        return sock


class SmtpConnection:
    """One reused SMTP connection (not thread-safe: one owner at a time).

    ``send(mail_from, recipients, data)`` opens the connection on first use, reconnects
    after drops, 421s and every ``messages_per_connection`` messages, and waits for the
    outcome. An owner juggling several connections in one thread (``deliver.engine``)
    uses ``begin`` -> an ``Exchange`` it drives by socket readiness -> ``finish``, and
    opens or recycles connections itself (``open``, ``needs_open``). Use as a context
    manager or call ``close``. ``connections_opened`` counts sessions for reporting.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.connections_opened = 0
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_connection = 0
        self._pipelining = False
        self._smtputf8 = False
        self._eightbit = False
        self._size = False
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
        return self._pipelining

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
        context = None
        if settings.security != TLS_NONE:
            context = _tls_context(settings.cafile)
        smtp: smtplib.SMTP | None = None
        local_hostname = settings.local_hostname or _ehlo_name()
        try:
            # host given to the constructor: smtplib checks the certificate against it
            if settings.security == TLS_IMPLICIT:
                smtp = _SmtpSsl(
                    settings.host,
                    settings.port,
                    timeout=settings.timeout,
                    context=context,
                    local_hostname=local_hostname,
                    on_socket=self._opening_on,
                )
            else:
                smtp = _Smtp(
                    settings.host,
                    settings.port,
                    timeout=settings.timeout,
                    local_hostname=local_hostname,
                    on_socket=self._opening_on,
                )
            self._handshake(smtp, context)
        except BaseException as exc:
            self._abort(smtp)
            error = self._open_error(exc)
            if error is None:
                raise
            raise error from None
        finally:
            self._opened_or_failed()
        self._smtp = smtp
        self._sent_on_connection = 0
        self.connections_opened += 1
        log.debug("connected to %s (pipelining=%s)", settings.display, self._pipelining)

    def _open_error(self, exc: BaseException) -> DeliveryError | None:
        """The one-line DeliveryError for a failure to open a session (None: not ours)."""
        where = self.settings.display
        if isinstance(exc, DeliveryError):
            return exc
        if isinstance(exc, ssl.SSLCertVerificationError):
            return DeliveryError(
                f"{where}: the server's TLS certificate is not trusted ({exc.verify_message})",
                hint="fix the certificate, or add ?cafile=PATH for a private CA",
            )
        if isinstance(exc, ssl.SSLError):
            return DeliveryError(
                f"{where}: TLS handshake failed ({exc.reason or exc})",
                hint="use smtps:// for port 465 and smtp:// (STARTTLS) for 587",
            )
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return DeliveryError(
                f"{where}: login rejected ({exc.smtp_code} {_reply_text(exc.smtp_error)})",
                hint=f"check the user name and password in {SMTP_URL_ENV}",
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return DeliveryError(
                f"{where}: the server does not support login ({exc})",
                hint=f"drop user:password from {SMTP_URL_ENV} if it needs none",
            )
        if isinstance(exc, smtplib.SMTPConnectError):
            if 400 <= exc.smtp_code < 500:
                return ServerBusyError(
                    f"{where} refused the session for now: {exc.smtp_code} "
                    f"{_reply_text(exc.smtp_error)}",
                    hint="try again later, or use fewer connections (--connections)",
                )
            return DeliveryError(
                f"{where} refused the session: {exc.smtp_code} {_reply_text(exc.smtp_error)}",
                hint="check the host and port, or try again later",
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            return DeliveryError(
                f"{where}: unexpected reply {exc.smtp_code} {_reply_text(exc.smtp_error)}",
                hint="check the server settings",
            )
        if isinstance(exc, smtplib.SMTPException | OSError):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return DeliveryError(
                f"cannot connect to {where}: {reason or type(exc).__name__}",
                hint=f"check the host and port in {SMTP_URL_ENV} and that the server is running",
            )
        return None

    def _handshake(self, smtp: smtplib.SMTP, context: ssl.SSLContext | None) -> None:
        settings = self.settings
        self._ehlo(smtp)
        if settings.security == TLS_STARTTLS and context is not None:
            if smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                self._ehlo(smtp)
            elif settings.allow_insecure and not settings.username:
                log.warning("%s does not offer STARTTLS; sending unencrypted", settings.display)
            else:
                raise DeliveryError(
                    f"{settings.display} does not offer STARTTLS; refusing to send unencrypted",
                    hint="use smtps:// (port 465) or set send.allow_insecure = true "
                    "for a trusted network (AUTH is never sent unencrypted)",
                )
        if settings.username:
            if not isinstance(smtp.sock, ssl.SSLSocket):
                raise DeliveryError(
                    f"{settings.display}: not logging in over an unencrypted connection",
                    hint="use STARTTLS or smtps://",
                )
            smtp.login(settings.username, settings.password)
        sock = smtp.sock
        if sock is not None:
            # two small writes per message: do not let Nagle hold the second one back
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pipelining = smtp.has_extn("pipelining")
        self._smtputf8 = smtp.has_extn("smtputf8")
        self._eightbit = smtp.has_extn("8bitmime")
        self._size = smtp.has_extn("size")

    @staticmethod
    def _ehlo(smtp: smtplib.SMTP) -> None:
        code, message = smtp.ehlo()
        if code != 250:
            code, message = smtp.helo()
            if code != 250:
                raise smtplib.SMTPResponseException(code, message)

    @staticmethod
    def _abort(smtp: smtplib.SMTP | None) -> None:
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    def close(self) -> None:
        """QUIT politely if a session is open, then close the socket."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.sock is not None:
                # transactions left it non-blocking; a polite QUIT is not worth a long wait
                smtp.sock.settimeout(min(self.settings.timeout, _QUIT_TIMEOUT))
                smtp.sock.sendall(b"QUIT\r\n")
                smtp.getreply()
        except (smtplib.SMTPException, OSError):
            pass
        self._abort(smtp)

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        self._abort(smtp)

    # -- sending --

    def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> list[Outcome]:
        """Deliver ``data`` (CRLF wire bytes) from ``mail_from`` to ``recipients``.

        Returns one Outcome per recipient, in order. Raises DeliveryError when no
        connection can be opened or the sender is refused (5xx to MAIL FROM); ValueError
        for malformed addresses or data.
        """
        if not recipients:
            return []
        envelope = _Envelope.of(mail_from, recipients, data)
        if self.needs_open:
            self.open()
        try:
            outcomes = self.finish(_wait(self._start(envelope)))
        except RetryOnNewConnection:
            # the server closed a reused connection before answering (idle timeout, its
            # own per-connection limit): nothing was accepted, so one more try is safe
            log.info("%s closed a reused connection; reconnecting", self.settings.display)
            self.open()
            outcomes = self.finish(_wait(self._start(envelope)))
        if self._smtp is not None and self.needs_open:
            self.close()
        return outcomes

    def begin(
        self, mail_from: str, recipients: Sequence[str], data: bytes, *, wire_ready: bool = False
    ) -> Exchange:
        """Start one transaction on the open session -> its Exchange (nothing sent until
        its first ``pump``). ValueError for malformed addresses or data; ``wire_ready``
        as for ``dot_stuff``."""
        return self._start(_Envelope.of(mail_from, recipients, data, wire_ready=wire_ready))

    def _start(self, envelope: _Envelope) -> Exchange:
        smtp = self._smtp
        if smtp is None or smtp.sock is None:
            raise RuntimeError("a transaction needs an open session")
        params = b" SIZE=%d" % envelope.size if self._size else b""
        if envelope.unicode:
            params += b" SMTPUTF8 BODY=8BITMIME"
        elif self._eightbit and not envelope.payload.isascii():
            params += b" BODY=8BITMIME"
        commands = [b"MAIL FROM:<" + envelope.sender + b">" + params + b"\r\n"]
        commands += [b"RCPT TO:<" + r + b">\r\n" for r in envelope.rcpts]
        commands.append(b"DATA\r\n")
        smtp.sock.setblocking(False)
        exchange = Exchange(
            smtp.sock,
            envelope.recipients,
            commands,
            envelope.payload,
            pipelining=self._pipelining,
            reused=self._sent_on_connection > 0,
            timeout=self.settings.timeout,
        )
        if envelope.unicode and not self._smtputf8:
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
                f"{self.settings.display} refused the sender: {code} {_reply_text(text)}",
                hint="check sender.address and sender.bounce_address, and the server's policy",
            )
        self._sent_on_connection += 1
        return [exchange.results[i] for i in range(len(exchange.recipients))]


def _wait(exchange: Exchange) -> Exchange:
    """Drive ``exchange`` to its end in the calling thread -> it."""
    with selectors.DefaultSelector() as selector:
        events = exchange.wants()
        if events:
            selector.register(exchange.sock, events)
        while not exchange.done:
            remaining = exchange.deadline - time.monotonic()
            if remaining <= 0:
                exchange.expire()
                break
            if selector.select(remaining):
                exchange.pump()
                if exchange.wants() != events and not exchange.done:
                    events = exchange.wants()
                    selector.modify(exchange.sock, events)
    return exchange


# --- rate limit -------------------------------------------------------------------------------


class RateLimiter:
    """At most ``per_second`` messages per second (0 = no limit), for a caller that must
    never block (the send loop): ``try_take`` a slot or learn how long until one,
    ``ready_in`` to look without taking. ``clock`` is injectable for tests."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._next = 0.0

    def ready_in(self) -> float:
        """Seconds until a message may go (0.0: now); takes nothing."""
        if not self.interval:
            return 0.0
        return max(self._next - self._clock(), 0.0)

    def try_take(self) -> float:
        """0.0 when a message may go now (its slot is taken), else the seconds until one
        may (nothing taken). Idle time builds up no burst: the next slot counts from now."""
        wait = self.ready_in()
        if self.interval and not wait:
            self._next = self._clock() + self.interval
        return wait
