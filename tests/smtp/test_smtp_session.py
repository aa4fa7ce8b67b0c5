"""Opening sessions against real servers on loopback: TLS, certificates, AUTH, refusals,
unreachable and silent servers."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

import pytest

from newsletter.errors import DeliveryError
from newsletter.smtp.connection import SmtpConnection
from newsletter.smtp.outcome import Status
from newsletter.smtp.settings import (
    TLS_IMPLICIT,
    TLS_NONE,
    TLS_STARTTLS,
    SmtpSettings,
    parse_smtp_url,
)
from smtp_servers import MESSAGE, SENDER, ScriptedHandler, StartServer


def test_unreachable_server_is_a_delivery_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    settings = parse_smtp_url(f"smtp://127.0.0.1:{free_port}", timeout=2)
    with pytest.raises(DeliveryError) as info:
        SmtpConnection(settings).send(SENDER, ["a@example.net"], MESSAGE)
    assert f"cannot connect to smtp://127.0.0.1:{free_port}" in str(info.value)
    assert "\n" not in str(info.value)


def _stall_after_starttls(accepted: socket.socket) -> None:
    """Play a server that offers STARTTLS, says go, then never answers the TLS hello."""
    reader = accepted.makefile("rb")
    accepted.sendall(b"220 mail.example.net ready\r\n")
    reader.readline()  # EHLO
    accepted.sendall(b"250-mail.example.net\r\n250 STARTTLS\r\n")
    reader.readline()  # STARTTLS
    accepted.sendall(b"220 go ahead\r\n")
    accepted.recv(1)  # the client hello has started: the client is in the handshake


@pytest.mark.parametrize("security", [TLS_NONE, TLS_IMPLICIT, TLS_STARTTLS])
def test_an_open_stuck_on_a_silent_server_can_be_aborted(security: str) -> None:
    """A server that takes the TCP connection and never greets, never answers the TLS
    hello, or stalls after STARTTLS: ``abort_open`` from another thread ends the wait,
    not the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        connection = SmtpConnection(
            SmtpSettings(host="127.0.0.1", port=port, security=security, timeout=60)
        )
        errors: list[BaseException] = []

        def open_it() -> None:
            try:
                connection.open()
            except BaseException as exc:
                errors.append(exc)

        opener = threading.Thread(target=open_it)
        opener.start()
        accepted, _ = listener.accept()  # the client is now waiting for a greeting
        with accepted:
            if security == TLS_STARTTLS:
                _stall_after_starttls(accepted)
            connection.abort_open()
            opener.join(timeout=10)
        assert not opener.is_alive(), "abort_open did not end the open"
    assert len(errors) == 1 and isinstance(errors[0], DeliveryError)
    assert not connection.is_open


def auth_server(start_server: StartServer, context: ssl.SSLContext, **kwargs: Any) -> Any:
    handler = ScriptedHandler()
    options = {"authenticator": handler.authenticate, "auth_require_tls": True, **kwargs}
    return handler, start_server(handler, **options)


def test_starttls_with_verified_certificate_and_auth(
    start_server: StartServer, tls: Any, cafile: str
) -> None:
    handler, server = auth_server(start_server, tls[1], tls_context=tls[1])
    url = f"smtp://news:p%40ss%3Aw%2Frd%25@127.0.0.1:{server.port}?cafile={cafile}"
    settings = parse_smtp_url(url, timeout=5)
    assert settings.security == TLS_STARTTLS and settings.password == "p@ss:w/rd%"
    with SmtpConnection(settings) as connection:
        outcome = connection.send(SENDER, ["a@example.net"], MESSAGE)[0]
    assert outcome.status is Status.ACCEPTED
    assert handler.auth_attempts == [("news", "p@ss:w/rd%")]


def test_implicit_tls_on_smtps(start_server: StartServer, tls: Any, cafile: str) -> None:
    # aiosmtpd only counts STARTTLS as TLS for AUTH; here the whole session is TLS
    handler, server = auth_server(start_server, tls[1], ssl_context=tls[1], auth_require_tls=False)
    url = f"smtps://news:p%40ss%3Aw%2Frd%25@127.0.0.1:{server.port}?cafile={cafile}"
    settings = parse_smtp_url(url, timeout=5)
    assert settings.security == TLS_IMPLICIT
    with SmtpConnection(settings) as connection:
        assert connection.send(SENDER, ["a@example.net"], MESSAGE)[0].status is Status.ACCEPTED
    assert handler.auth_attempts == [("news", "p@ss:w/rd%")]


def test_untrusted_or_mismatched_certificate_is_refused(
    start_server: StartServer, tls: Any, cafile: str
) -> None:
    _, untrusted = auth_server(start_server, tls[1], tls_context=tls[1])
    settings = parse_smtp_url(f"smtp://127.0.0.1:{untrusted.port}?tls=starttls", timeout=5)
    with pytest.raises(DeliveryError, match="not trusted"):
        SmtpConnection(settings).open()
    _, wrong = auth_server(start_server, tls[2], tls_context=tls[2])
    settings = parse_smtp_url(
        f"smtp://127.0.0.1:{wrong.port}?tls=starttls&cafile={cafile}", timeout=5
    )
    with pytest.raises(DeliveryError, match="not trusted"):
        SmtpConnection(settings).open()


def test_starttls_not_offered_is_refused(start_server: StartServer) -> None:
    handler = ScriptedHandler()
    server = start_server(handler, authenticator=handler.authenticate, auth_require_tls=False)
    # a server offering AUTH in the clear: we neither log in nor send anything
    url = f"smtp://news:p%40ss%3Aw%2Frd%25@127.0.0.1:{server.port}"
    with pytest.raises(DeliveryError, match="does not offer STARTTLS") as info:
        SmtpConnection(parse_smtp_url(url, timeout=5)).send(SENDER, ["a@example.net"], MESSAGE)
    assert "p@ss" not in str(info.value) and "%40" not in str(info.value)
    insecure = parse_smtp_url(url, timeout=5, allow_insecure=True)
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        SmtpConnection(insecure).open()
    forced = parse_smtp_url(f"smtp://127.0.0.1:{server.port}?tls=starttls", timeout=5)
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        SmtpConnection(forced).open()
    assert handler.auth_attempts == [] and handler.received == []
    # allow_insecure without credentials: plain delivery, with a warning
    allowed = parse_smtp_url(
        f"smtp://127.0.0.1:{server.port}?tls=starttls", timeout=5, allow_insecure=True
    )
    with SmtpConnection(allowed) as connection:
        assert connection.send(SENDER, ["a@example.net"], MESSAGE)[0].status is Status.ACCEPTED


def test_wrong_password_is_a_delivery_error(
    start_server: StartServer, tls: Any, cafile: str
) -> None:
    handler, server = auth_server(start_server, tls[1], tls_context=tls[1])
    url = f"smtp://news:wrong-secret@127.0.0.1:{server.port}?cafile={cafile}"
    with pytest.raises(DeliveryError, match="login rejected") as info:
        SmtpConnection(parse_smtp_url(url, timeout=5)).open()
    assert "wrong-secret" not in str(info.value)
    assert "NEWSLETTER_SMTP_URL" in str(info.value)
    # smtplib tries each mechanism offered (PLAIN, LOGIN) before giving up
    assert set(handler.auth_attempts) == {("news", "wrong-secret")}


def test_tls_to_a_plain_server_fails_cleanly(start_server: StartServer, cafile: str) -> None:
    server = start_server()
    settings = parse_smtp_url(f"smtps://127.0.0.1:{server.port}?cafile={cafile}", timeout=5)
    with pytest.raises(DeliveryError, match=r"TLS|connect"):
        SmtpConnection(settings).open()
