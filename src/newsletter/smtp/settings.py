"""SMTP settings: where and how to connect, from ``NEWSLETTER_SMTP_URL`` and [send].

``smtps://[user:pass@]host[:465]``  implicit TLS.
``smtp://[user:pass@]host[:587]``   STARTTLS required (abort if the server does not offer
                                    it, unless ``send.allow_insecure`` and no AUTH).
``smtp://localhost[:25]``           a local relay: plain SMTP, allowed on loopback only.
Query options: ``?cafile=PATH`` trusts a private CA (tests, internal relays);
``?tls=starttls`` forces STARTTLS on loopback, ``?tls=none`` allows plain SMTP
(only on loopback, or anywhere with ``send.allow_insecure``). Certificates are always
verified (``ssl.create_default_context``), the user and password are URL-decoded, AUTH
is never sent over an unencrypted connection, and no message ever shows the password.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.errors import ConfigError
from newsletter.workspace import Workspace

SMTP_URL_ENV = "NEWSLETTER_SMTP_URL"
TLS_IMPLICIT, TLS_STARTTLS, TLS_NONE = "tls", "starttls", "none"
_URL_HINT = "use smtp://user:pass@host:587, smtps://user:pass@host:465 or smtp://localhost:25"


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
    """Parse an SMTP URL (the forms above) -> SmtpSettings, or raise ConfigError."""
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
    security = _security(scheme, query.get("tls"), host, username, allow_insecure, where)
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


def _security(
    scheme: str,
    tls: list[str] | None,
    host: str,
    username: str,
    allow_insecure: bool,
    where: str,
) -> str:
    """The TLS mode for the URL's scheme and ``?tls=`` values -> TLS_IMPLICIT,
    TLS_STARTTLS or TLS_NONE; ConfigError where plain SMTP is not allowed."""
    loopback = is_loopback(host)
    if scheme == "smtps":
        return TLS_IMPLICIT
    default = TLS_NONE if loopback and not username else TLS_STARTTLS
    security = (tls or [default])[-1].lower()
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
    return security


def smtp_settings(workspace: Workspace, url: str | None = None) -> SmtpSettings | None:
    """Settings from ``url`` or NEWSLETTER_SMTP_URL plus [send]; None when neither is set
    (the caller then starts the embedded local server, see ``newsletter.smtp.embedded``)."""
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
