"""Opening an SMTP session: connect, EHLO, STARTTLS or implicit TLS, AUTH (smtplib).

This part is blocking and rare (once per connection); the transactions on the session
then run as non-blocking ``exchange.Exchange`` objects. Every way opening can fail
becomes one DeliveryError line with a hint, and no message ever shows the password.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from newsletter.errors import DeliveryError, ServerBusyError

from .outcome import reply_text
from .settings import SMTP_URL_ENV, TLS_IMPLICIT, TLS_NONE, TLS_STARTTLS, SmtpSettings

log = logging.getLogger(__name__)

OnSocket = Callable[[socket.socket], None]


@dataclass(frozen=True)
class Extensions:
    """The ESMTP extensions of an open session that change how a transaction is sent."""

    pipelining: bool = False
    smtputf8: bool = False
    eightbit: bool = False
    size: bool = False


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


class _Smtp(smtplib.SMTP):
    """smtplib's client, telling ``on_socket`` the TCP socket as soon as it exists, so
    that another thread can abort a session setup stuck on a silent server."""

    def __init__(self, *args: Any, on_socket: OnSocket, **kwargs: Any) -> None:
        self._on_socket = on_socket
        super().__init__(*args, **kwargs)

    # smtplib has no public hook between making the socket and reading the greeting (or
    # the TLS handshake), which is exactly where a silent server blocks us
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        self._on_socket(sock)
        return sock


class _SmtpSsl(smtplib.SMTP_SSL, _Smtp):
    """``_Smtp`` for implicit TLS: SMTP_SSL wraps the TCP socket ``_Smtp`` has just told,
    so the TLS handshake can be aborted too."""

    def __init__(self, *args: Any, on_socket: OnSocket, **kwargs: Any) -> None:
        # SMTP_SSL.__init__ calls SMTP.__init__ directly, skipping _Smtp's
        self._on_socket = on_socket
        super().__init__(*args, **kwargs)


def open_session(settings: SmtpSettings, *, on_socket: OnSocket) -> tuple[smtplib.SMTP, Extensions]:
    """Connect, EHLO, STARTTLS/TLS and AUTH as ``settings`` say -> the session and its
    extensions. ``on_socket`` gets the TCP socket as soon as it exists (to abort a stuck
    setup from another thread). Raises DeliveryError (ServerBusyError for a 4xx greeting)."""
    context = _tls_context(settings.cafile) if settings.security != TLS_NONE else None
    smtp: smtplib.SMTP | None = None
    options: dict[str, Any] = {
        "timeout": settings.timeout,
        "local_hostname": settings.local_hostname or _ehlo_name(),
        "on_socket": on_socket,
    }
    try:
        # host given to the constructor: smtplib checks the certificate against it
        if settings.security == TLS_IMPLICIT:
            smtp = _SmtpSsl(settings.host, settings.port, context=context, **options)
        else:
            smtp = _Smtp(settings.host, settings.port, **options)
        return smtp, _handshake(smtp, settings, context)
    except BaseException as exc:
        close_quietly(smtp)
        error = open_error(exc, settings.display)
        if error is None:
            raise
        raise error from None


def _handshake(
    smtp: smtplib.SMTP, settings: SmtpSettings, context: ssl.SSLContext | None
) -> Extensions:
    """EHLO (HELO if refused), STARTTLS when configured, AUTH -> the session's extensions."""
    smtp.ehlo_or_helo_if_needed()
    if settings.security == TLS_STARTTLS and context is not None:
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo_or_helo_if_needed()
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
    if smtp.sock is not None:
        # two small writes per message: do not let Nagle hold the second one back
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Extensions(
        pipelining=smtp.has_extn("pipelining"),
        smtputf8=smtp.has_extn("smtputf8"),
        eightbit=smtp.has_extn("8bitmime"),
        size=smtp.has_extn("size"),
    )


def open_error(exc: BaseException, where: str) -> DeliveryError | None:
    """The one-line DeliveryError for a failure to open a session with ``where`` (the
    server's display URL) -> None when ``exc`` is not about the session."""
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
            f"{where}: login rejected ({exc.smtp_code} {reply_text(exc.smtp_error)})",
            hint=f"check the user name and password in {SMTP_URL_ENV}",
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(
            f"{where}: the server does not support login ({exc})",
            hint=f"drop user:password from {SMTP_URL_ENV} if it needs none",
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return _refusal(exc, where)
    if isinstance(exc, smtplib.SMTPException | OSError):
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return DeliveryError(
            f"cannot connect to {where}: {reason or type(exc).__name__}",
            hint=f"check the host and port in {SMTP_URL_ENV} and that the server is running",
        )
    return None


def _refusal(exc: smtplib.SMTPResponseException, where: str) -> DeliveryError:
    """The DeliveryError for a reply that ended the session setup (greeting, EHLO, ...)."""
    reply = f"{exc.smtp_code} {reply_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPConnectError):
        if 400 <= exc.smtp_code < 500:
            return ServerBusyError(
                f"{where} refused the session for now: {reply}",
                hint="try again later, or use fewer connections (--connections)",
            )
        return DeliveryError(
            f"{where} refused the session: {reply}",
            hint="check the host and port, or try again later",
        )
    return DeliveryError(f"{where}: unexpected reply {reply}", hint="check the server settings")


def close_quietly(smtp: smtplib.SMTP | None) -> None:
    """Close ``smtp``'s socket, if any, ignoring errors (the session is being dropped)."""
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()
