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
``SmtpConnection`` is one reused connection, owned by one worker thread: the ledger loop
runs N workers, each with its own connection; the SMTP server and the network do the
waiting, so threads overlap well despite the GIL (see bench/bench_transport.py).
It uses smtplib for the session setup (EHLO, STARTTLS, AUTH) and, when the server
offers ESMTP PIPELINING (RFC 2920), sends MAIL, RCPT and DATA in one write, then the
message: two round trips per message instead of four. The message bytes are sent as
they are (dot-stuffed), so what was DKIM-signed is what arrives.

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
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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


class _Lost(Exception):
    """A reused connection died or said 421 before answering anything of a transaction."""


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


def dot_stuff(data: bytes) -> bytes:
    """``data`` as SMTP DATA content: lines starting with "." doubled, ending CRLF . CRLF.

    ``data`` must use CRLF line ends only: a bare LF could let a receiver see an end of
    data we did not send (SMTP smuggling), so it raises ValueError.
    """
    if data.count(b"\n") != data.count(b"\r\n"):
        raise ValueError("message data must use CRLF line ends only")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def _address(value: str) -> bytes:
    if not value or any(c in value for c in "<>\r\n ") or len(value) > 320:
        raise ValueError(f"not a bare address: {value!r}")
    return value.encode("utf-8")


class SmtpConnection:
    """One reused SMTP connection (not thread-safe: one per worker).

    ``send(mail_from, recipients, data)`` opens the connection on first use, reconnects
    after drops, 421s and every ``messages_per_connection`` messages. Use as a context
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

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """Whether a session is currently established."""
        return self._smtp is not None

    @property
    def pipelining(self) -> bool:
        """Whether the current (or last) session uses ESMTP PIPELINING."""
        return self._pipelining

    # -- session setup --

    def open(self) -> None:
        """Connect, EHLO, STARTTLS/TLS and AUTH as configured; DeliveryError if impossible."""
        self.close()
        settings = self.settings
        context = None
        if settings.security != TLS_NONE:
            context = _tls_context(settings.cafile)
        smtp: smtplib.SMTP | None = None
        local_hostname = settings.local_hostname or _ehlo_name()
        try:
            # host given to the constructor: smtplib checks the certificate against it
            if settings.security == TLS_IMPLICIT:
                smtp = smtplib.SMTP_SSL(
                    settings.host,
                    settings.port,
                    timeout=settings.timeout,
                    context=context,
                    local_hostname=local_hostname,
                )
            else:
                smtp = smtplib.SMTP(
                    settings.host,
                    settings.port,
                    timeout=settings.timeout,
                    local_hostname=local_hostname,
                )
            self._handshake(smtp, context)
        except BaseException as exc:
            self._abort(smtp)
            error = self._open_error(exc)
            if error is None:
                raise
            raise error from None
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
        payload = dot_stuff(data)
        envelope = (_address(mail_from), [_address(r) for r in recipients])
        if self._smtp is None:
            self.open()
        reused = self._sent_on_connection > 0
        try:
            outcomes = self._transaction(envelope, recipients, payload, len(data), retry=reused)
        except _Lost:
            # the server closed a reused connection before answering (idle timeout, its
            # own per-connection limit): nothing was accepted, so one more try is safe
            log.info("%s closed a reused connection; reconnecting", self.settings.display)
            self.open()
            outcomes = self._transaction(envelope, recipients, payload, len(data), retry=False)
        self._sent_on_connection += 1
        limit = self.settings.messages_per_connection
        if self._smtp is not None and self._sent_on_connection >= limit:
            self.close()
        return outcomes

    def _transaction(
        self,
        envelope: tuple[bytes, list[bytes]],
        recipients: Sequence[str],
        payload: bytes,
        size: int,
        *,
        retry: bool,
    ) -> list[Outcome]:
        """One MAIL/RCPT/DATA transaction; raises _Lost (only if ``retry``) when the
        connection failed before any reply, DeliveryError when the sender is refused."""
        smtp = self._smtp
        assert smtp is not None and smtp.sock is not None
        sock = smtp.sock
        mail_from, rcpts = envelope
        results: dict[int, Outcome] = {}
        unicode = not (mail_from.isascii() and all(r.isascii() for r in rcpts))
        if unicode and not self._smtputf8:
            reply = "the server does not support SMTPUTF8, needed for a non-ASCII address"
            return [Outcome(r, Status.PERMANENT, None, "5.6.7", reply) for r in recipients]
        params = b" SIZE=%d" % size if self._size else b""
        if unicode:
            params += b" SMTPUTF8 BODY=8BITMIME"
        elif self._eightbit and not payload.isascii():
            params += b" BODY=8BITMIME"
        commands = [b"MAIL FROM:<" + mail_from + b">" + params + b"\r\n"]
        commands += [b"RCPT TO:<" + r + b">\r\n" for r in rcpts]
        commands.append(b"DATA\r\n")

        replies: list[tuple[int, bytes]] = []
        final_dot_sent = False
        try:
            if self._pipelining:
                sock.sendall(b"".join(commands))
                for _ in commands:
                    replies.append(smtp.getreply())
                    # a 421 means the server is closing: there are no more replies to read
                    if replies[-1][0] == 421:
                        break
            else:
                for index, command in enumerate(commands):
                    sock.sendall(command)
                    replies.append(smtp.getreply())
                    code = replies[-1][0]
                    if code == 421 or (index == 0 and code >= 400):
                        break
                    if index == len(rcpts) and not any(300 > c >= 200 for c, _ in replies[1:]):
                        break  # no recipient accepted: do not start DATA
            accepted = self._rcpt_results(recipients, replies, results)
            data_reply = replies[len(rcpts) + 1] if len(replies) == len(commands) else None
            if data_reply is not None and data_reply[0] == 354:
                sock.sendall(payload if accepted else b".\r\n")
                final_dot_sent = bool(accepted)
                final = smtp.getreply()
                for index in accepted:
                    results[index] = _outcome(recipients[index], *final)
            elif data_reply is not None:
                for index in accepted:
                    results[index] = _outcome(recipients[index], *data_reply)
            elif accepted and replies[-1][0] == 421:
                for index in accepted:
                    results[index] = _outcome(recipients[index], *replies[-1])
        except (smtplib.SMTPServerDisconnected, OSError):
            self._drop()
            if retry and not replies:
                raise _Lost from None
            for index, recipient in enumerate(recipients):
                if index not in results:
                    if final_dot_sent:
                        results[index] = Outcome(
                            recipient, Status.UNKNOWN, None, "", "no reply after the message"
                        )
                    else:
                        results[index] = Outcome(
                            recipient, Status.TRANSIENT, None, "", "connection lost"
                        )
            return [results[i] for i in range(len(recipients))]

        if any(code == 421 for code, _ in replies):
            self._drop()
        # a 421 on a reused connection before any recipient was answered: reconnect once
        if retry and replies and replies[0][0] == 421:
            raise _Lost
        if replies and 500 <= replies[0][0] < 600:
            if self._smtp is not None:
                self._reset()
            raise DeliveryError(
                f"{self.settings.display} refused the sender <{mail_from.decode()}>: "
                f"{replies[0][0]} {_reply_text(replies[0][1])}",
                hint="check sender.address and sender.bounce_address, and the server's policy",
            )
        for index, recipient in enumerate(recipients):
            if index not in results:
                results[index] = self._unanswered(recipient, replies)
        outcomes = [results[i] for i in range(len(recipients))]
        if self._smtp is not None and any(o.status is not Status.ACCEPTED for o in outcomes):
            self._reset()
        return outcomes

    @staticmethod
    def _rcpt_results(
        recipients: Sequence[str], replies: list[tuple[int, bytes]], results: dict[int, Outcome]
    ) -> list[int]:
        """Fill ``results`` for recipients whose RCPT failed; return indexes accepted."""
        if not replies or replies[0][0] >= 400:
            return []  # MAIL FROM failed: handled by _unanswered
        accepted = []
        for index, reply in enumerate(replies[1 : len(recipients) + 1]):
            if 200 <= reply[0] < 300:
                accepted.append(index)
            else:
                results[index] = _outcome(recipients[index], *reply)
        return accepted

    @staticmethod
    def _unanswered(recipient: str, replies: list[tuple[int, bytes]]) -> Outcome:
        """The outcome for a recipient the transaction never got to (MAIL failed, 421)."""
        failing = next(((c, m) for c, m in replies if c >= 400), None)
        if failing is None:
            return Outcome(recipient, Status.TRANSIENT, None, "", "no reply")
        return _outcome(recipient, *failing)

    def _reset(self) -> None:
        smtp = self._smtp
        assert smtp is not None and smtp.sock is not None
        try:
            smtp.sock.sendall(b"RSET\r\n")
            code, _ = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError):
            code = 0
        if code != 250:
            self._drop()


# --- rate limit -------------------------------------------------------------------------------


class RateLimiter:
    """At most ``per_second`` messages per second across all threads (0 = no limit).

    ``wait()`` blocks the calling worker until its turn. ``clock`` and ``sleep`` are
    injectable so tests run on a fake clock.
    """

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next message may go; return the seconds waited."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(self._next, now)
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return max(delay, 0.0)
