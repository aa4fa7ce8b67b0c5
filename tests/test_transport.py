"""transport.py and outbox.py against real aiosmtpd servers on loopback.

Each scripted server answers MAIL, RCPT and DATA as a test tells it to (including 4xx,
5xx, 421, dropped connections and a server that never answers), and counts its
connections. Every outcome test runs with and without ESMTP PIPELINING.
Sender rules covered: 3 (bytes received verify), 22 (connection-level), 23.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from newsletter.errors import ConfigError, DeliveryError
from newsletter.message import DkimSigner, MessageSettings, Recipient, build_template
from newsletter.outbox import EmbeddedServer, outbox_dir
from newsletter.slots import SlotGrammar
from newsletter.transport import (
    TLS_IMPLICIT,
    TLS_NONE,
    TLS_STARTTLS,
    RateLimiter,
    SmtpConnection,
    SmtpSettings,
    Status,
    dot_stuff,
    parse_smtp_url,
    smtp_settings,
)
from newsletter.workspace import Workspace
from smtp_servers import CountingController

DKIM_DIR = Path(__file__).resolve().parent / "fixtures" / "dkim"
SENDER = "bounces+1-abc@harbour.example.org"
MESSAGE = (
    b"From: Harbour <letter@harbour.example.org>\r\n"
    b"To: <a@example.net>\r\n"
    b"Subject: test\r\n"
    b"\r\n"
    b"Hello.\r\n"
    b".a line starting with a dot\r\n"
    b"..and two\r\n"
    b"the end\r\n"
)
DROP, HANG, CLOSE_AFTER = "DROP", "HANG", "CLOSE-AFTER"  # scripted actions, not replies


class ScriptedHandler:
    """aiosmtpd handler whose replies the test scripts; records what it received."""

    def __init__(self, *, pipelining: bool = True) -> None:
        self.pipelining = pipelining
        self.mail_script: deque[str] = deque()  # one entry per MAIL, then "250 OK"
        self.rcpt_replies: dict[str, str] = {}  # address -> reply or DROP
        self.data_script: deque[str] = deque()  # one entry per message, then "250 OK"
        self.data_command_reply: str | None = None  # answer DATA itself (before 354)
        self.received: list[tuple[str, list[str], bytes]] = []
        self.auth_attempts: list[tuple[str, str]] = []
        self.release = threading.Event()  # ends a HANG

    def _act(self, server: SMTP, reply: str) -> str:
        transport = server.transport
        assert transport is not None
        if reply == DROP:
            transport.close()
            return "250 never seen"
        if reply.startswith("421") or reply == CLOSE_AFTER:
            # send the reply first, then close, like a server shutting the session
            asyncio.get_running_loop().call_soon(transport.close)
        return "250 OK closing" if reply == CLOSE_AFTER else reply

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        extra = ["250-PIPELINING"] if self.pipelining else []
        return [*responses[:-1], *extra, responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.mail_script.popleft() if self.mail_script else "250 OK"
        if reply.startswith("250"):
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return self._act(server, reply)

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address, "250 OK")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self._act(server, reply)

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        reply = self.data_script.popleft() if self.data_script else "250 OK"
        if reply == HANG:
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
            return "250 OK late"
        return self._act(server, reply)

    def authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.auth_attempts.append((login, password))
        return AuthResult(success=(login, password) == ("news", "p@ss:w/rd%"), handled=False)


class ScriptedSMTP(SMTP):
    async def smtp_DATA(self, arg: str) -> None:
        reply = self.event_handler.data_command_reply
        if reply is not None and self.envelope is not None and self.envelope.rcpt_tos:
            await self.push(reply)
            return
        await super().smtp_DATA(arg)


class ScriptedController(CountingController):
    """The counting loopback server, speaking through ScriptedSMTP."""

    smtp_class = ScriptedSMTP


StartServer = Callable[..., CountingController]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    controllers: list[CountingController] = []

    def start(handler: ScriptedHandler | None = None, **kwargs: Any) -> CountingController:
        controller = ScriptedController(handler or ScriptedHandler(), **kwargs)
        controller.start()
        controllers.append(controller)
        return controller

    yield start
    for controller in controllers:
        controller.handler.release.set()
        controller.stop()


def plain(controller: CountingController, **kwargs: Any) -> SmtpSettings:
    options: dict[str, Any] = {"timeout": 5.0, **kwargs}
    return SmtpSettings(host="127.0.0.1", port=controller.port, security=TLS_NONE, **options)


@pytest.fixture(params=[True, False], ids=["pipelining", "no-pipelining"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# --- deliveries and outcomes ------------------------------------------------------------------


def test_delivery_sends_the_exact_bytes(start_server: StartServer, pipelining: bool) -> None:
    handler = ScriptedHandler(pipelining=pipelining)
    server = start_server(handler)
    with SmtpConnection(plain(server)) as connection:
        outcomes = connection.send(SENDER, ["a@example.net", "b@example.net"], MESSAGE)
        assert connection.pipelining is pipelining
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.ACCEPTED]
    assert outcomes[0].code == 250
    assert handler.received == [(SENDER, ["a@example.net", "b@example.net"], MESSAGE)]


def test_5xx_on_rcpt_fails_only_that_recipient(start_server: StartServer, pipelining: bool) -> None:
    handler = ScriptedHandler(pipelining=pipelining)
    handler.rcpt_replies["gone@example.net"] = "550 5.1.1 <gone@example.net>: no such user"
    server = start_server(handler)
    with SmtpConnection(plain(server)) as connection:
        mixed = connection.send(SENDER, ["a@example.net", "gone@example.net"], MESSAGE)
        alone = connection.send(SENDER, ["gone@example.net"], MESSAGE)
        after = connection.send(SENDER, ["c@example.net"], MESSAGE)
        assert connection.connections_opened == 1  # RSET kept the session usable
    assert mixed[0].status is Status.ACCEPTED
    assert mixed[1].status is Status.PERMANENT
    assert (mixed[1].code, mixed[1].enhanced) == (550, "5.1.1")
    assert "no such user" in mixed[1].reply
    assert alone[0].status is Status.PERMANENT
    assert after[0].status is Status.ACCEPTED
    assert [r[1] for r in handler.received] == [["a@example.net"], ["c@example.net"]]


@pytest.mark.parametrize("where", ["MAIL", "RCPT", "DATA-command", "DATA-final"])
def test_4xx_defers_without_failing(
    start_server: StartServer, pipelining: bool, where: str
) -> None:
    handler = ScriptedHandler(pipelining=pipelining)
    reply = "451 4.3.0 try again later"
    if where == "MAIL":
        handler.mail_script.append(reply)
    elif where == "RCPT":
        handler.rcpt_replies["a@example.net"] = reply
    elif where == "DATA-command":
        handler.data_command_reply = reply
    else:
        handler.data_script.append(reply)
    server = start_server(handler)
    with SmtpConnection(plain(server)) as connection:
        outcome = connection.send(SENDER, ["a@example.net"], MESSAGE)[0]
        handler.data_command_reply = None
        again = connection.send(SENDER, ["b@example.net"], MESSAGE)[0]
        assert connection.connections_opened == 1
    assert outcome.status is Status.TRANSIENT
    assert (outcome.code, outcome.enhanced) == (451, "4.3.0")
    assert again.status is Status.ACCEPTED


def test_5xx_to_mail_from_stops_the_run(start_server: StartServer, pipelining: bool) -> None:
    handler = ScriptedHandler(pipelining=pipelining)
    handler.mail_script.append("553 5.7.1 sender not allowed")
    server = start_server(handler)
    with SmtpConnection(plain(server)) as connection, pytest.raises(DeliveryError) as info:
        connection.send(SENDER, ["a@example.net"], MESSAGE)
    assert "refused the sender" in str(info.value) and "553" in str(info.value)


def test_421_defers_and_the_next_send_reconnects(
    start_server: StartServer, pipelining: bool
) -> None:
    handler = ScriptedHandler(pipelining=pipelining)
    handler.rcpt_replies["busy@example.net"] = "421 4.7.0 too many connections, closing"
    server = start_server(handler)
    with SmtpConnection(plain(server)) as connection:
        deferred = connection.send(SENDER, ["busy@example.net"], MESSAGE)[0]
        assert not connection.is_open
        accepted = connection.send(SENDER, ["a@example.net"], MESSAGE)[0]
        assert connection.connections_opened == 2
    assert (deferred.status, deferred.code) == (Status.TRANSIENT, 421)
    assert accepted.status is Status.ACCEPTED
    assert server.connections == 2


def test_drop_before_the_end_of_data_is_transient(
    start_server: StartServer, pipelining: bool
) -> None:
    handler = ScriptedHandler(pipelining=pipelining)
    handler.rcpt_replies["cut@example.net"] = DROP
    server = start_server(handler)
    with SmtpConnection(plain(server)) as connection:
        dropped = connection.send(SENDER, ["cut@example.net"], MESSAGE)[0]
        accepted = connection.send(SENDER, ["a@example.net"], MESSAGE)[0]
    assert dropped.status is Status.TRANSIENT and dropped.code is None
    assert accepted.status is Status.ACCEPTED
    assert [r[1] for r in handler.received] == [["a@example.net"]]


def test_drop_after_the_final_dot_is_unknown(start_server: StartServer, pipelining: bool) -> None:
    handler = ScriptedHandler(pipelining=pipelining)
    handler.data_script.append(DROP)
    server = start_server(handler)
    with SmtpConnection(plain(server)) as connection:
        outcome = connection.send(SENDER, ["a@example.net"], MESSAGE)[0]
    assert outcome.status is Status.UNKNOWN
    # why "unknown" and not "failed": the server did receive the whole message
    assert handler.received == [(SENDER, ["a@example.net"], MESSAGE)]


def test_timeout_after_the_final_dot_is_unknown(start_server: StartServer) -> None:
    handler = ScriptedHandler()
    handler.data_script.append(HANG)
    server = start_server(handler)
    with SmtpConnection(plain(server, timeout=0.5)) as connection:
        outcome = connection.send(SENDER, ["a@example.net"], MESSAGE)[0]
    assert outcome.status is Status.UNKNOWN


@pytest.mark.parametrize("how", ["idle-close", "421-on-mail"])
def test_reused_connection_closed_by_the_server_is_retried_once(
    start_server: StartServer, pipelining: bool, how: str
) -> None:
    handler = ScriptedHandler(pipelining=pipelining)
    if how == "idle-close":
        handler.data_script.append(CLOSE_AFTER)
    else:
        handler.mail_script.extend(["250 OK", "421 4.7.0 too many messages on this connection"])
    server = start_server(handler)
    with SmtpConnection(plain(server)) as connection:
        first = connection.send(SENDER, ["a@example.net"], MESSAGE)[0]
        second = connection.send(SENDER, ["b@example.net"], MESSAGE)[0]
        assert connection.connections_opened == 2
    assert (first.status, second.status) == (Status.ACCEPTED, Status.ACCEPTED)
    assert [r[1] for r in handler.received] == [["a@example.net"], ["b@example.net"]]


def test_fresh_connection_dropped_before_any_reply_is_not_retried(
    start_server: StartServer,
) -> None:
    handler = ScriptedHandler()
    handler.mail_script.append(DROP)
    server = start_server(handler)
    with SmtpConnection(plain(server)) as connection:
        outcome = connection.send(SENDER, ["a@example.net"], MESSAGE)[0]
        assert connection.connections_opened == 1
    assert outcome.status is Status.TRANSIENT
    assert handler.received == []


@pytest.mark.parametrize(("count", "limit"), [(10, 3), (10, 1), (7, 100)])
def test_rule22_messages_per_connection_limit(
    start_server: StartServer, pipelining: bool, count: int, limit: int
) -> None:
    handler = ScriptedHandler(pipelining=pipelining)
    server = start_server(handler)
    with SmtpConnection(plain(server, messages_per_connection=limit)) as connection:
        for number in range(count):
            outcome = connection.send(SENDER, [f"r{number}@example.net"], MESSAGE)[0]
            assert outcome.status is Status.ACCEPTED
    assert len(handler.received) == count
    assert server.connections == math.ceil(count / limit)


def test_non_ascii_address_needs_smtputf8(start_server: StartServer) -> None:
    without = start_server(ScriptedHandler(), enable_SMTPUTF8=False)
    with SmtpConnection(plain(without)) as connection:
        refused = connection.send(SENDER, ["zoë@example.net"], MESSAGE)[0]
    assert (refused.status, refused.enhanced) == (Status.PERMANENT, "5.6.7")
    handler = ScriptedHandler()
    with SmtpConnection(plain(start_server(handler))) as connection:
        accepted = connection.send(SENDER, ["zoë@example.net"], MESSAGE)[0]
    assert accepted.status is Status.ACCEPTED
    assert handler.received[0][1] == ["zoë@example.net"]


def test_bad_input_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="CRLF"):
        dot_stuff(b"Subject: x\r\n\r\nbare\nline\r\n")
    connection = SmtpConnection(SmtpSettings(host="127.0.0.1", port=1, security=TLS_NONE))
    with pytest.raises(ValueError):
        connection.send("a b@example.net", ["x@example.net"], MESSAGE)
    assert connection.send(SENDER, [], MESSAGE) == []


def test_dot_stuffing() -> None:
    assert dot_stuff(b".x\r\n.\r\nend") == b"..x\r\n..\r\nend\r\n.\r\n"
    # data that promises no line to stuff and no bare LF is only terminated
    assert dot_stuff(b"a\r\nb", wire_ready=True) == b"a\r\nb\r\n.\r\n"


# --- connection errors ------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[trustme.CA, ssl.SSLContext, ssl.SSLContext]]:
    """A test CA, a server context for 127.0.0.1, and one for a name that does not match."""
    ca = trustme.CA()
    good = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(good)
    wrong_name = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.org").configure_cert(wrong_name)
    yield ca, good, wrong_name


@pytest.fixture
def cafile(tls: tuple[trustme.CA, ssl.SSLContext, ssl.SSLContext], tmp_path: Path) -> str:
    path = tmp_path / "test-ca.pem"
    tls[0].cert_pem.write_to_path(str(path))
    return str(path)


def auth_server(start_server: StartServer, context: ssl.SSLContext, **kwargs: Any) -> Any:
    handler = ScriptedHandler()
    options = {"authenticator": handler.authenticate, "auth_require_tls": True, **kwargs}
    return handler, start_server(handler, **options)


def test_rule23_starttls_with_verified_certificate_and_auth(
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


def test_rule23_implicit_tls_on_smtps(start_server: StartServer, tls: Any, cafile: str) -> None:
    # aiosmtpd only counts STARTTLS as TLS for AUTH; here the whole session is TLS
    handler, server = auth_server(start_server, tls[1], ssl_context=tls[1], auth_require_tls=False)
    url = f"smtps://news:p%40ss%3Aw%2Frd%25@127.0.0.1:{server.port}?cafile={cafile}"
    settings = parse_smtp_url(url, timeout=5)
    assert settings.security == TLS_IMPLICIT
    with SmtpConnection(settings) as connection:
        assert connection.send(SENDER, ["a@example.net"], MESSAGE)[0].status is Status.ACCEPTED
    assert handler.auth_attempts == [("news", "p@ss:w/rd%")]


def test_rule23_untrusted_or_mismatched_certificate_is_refused(
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


def test_rule23_starttls_not_offered_is_refused(start_server: StartServer) -> None:
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


def test_rule23_wrong_password_is_a_delivery_error(
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


# --- URL parsing ------------------------------------------------------------------------------


def test_rule23_url_security_defaults() -> None:
    remote = parse_smtp_url("smtp://news:pw@mail.example.org")
    assert (remote.security, remote.port) == (TLS_STARTTLS, 587)
    assert parse_smtp_url("smtp://mail.example.org:587").security == TLS_STARTTLS
    secure = parse_smtp_url("smtps://news:pw@mail.example.org")
    assert (secure.security, secure.port) == (TLS_IMPLICIT, 465)
    relay = parse_smtp_url("smtp://localhost")
    assert (relay.security, relay.port) == (TLS_NONE, 25)
    assert parse_smtp_url("smtp://127.0.0.1:2525").security == TLS_NONE
    assert parse_smtp_url("smtp://[::1]:25").security == TLS_NONE
    assert parse_smtp_url("smtp://u:p@127.0.0.1:2525").security == TLS_STARTTLS
    assert "pw" not in repr(remote) and remote.display == "smtp://news@mail.example.org:587"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.org", "smtp://"),
        ("smtp://", "smtp://"),
        ("smtp://mail.example.org:99999", "not a valid URL"),
        ("smtp://mail.example.org?tls=none", "plain SMTP to a remote host"),
        ("smtp://u:secret@127.0.0.1?tls=none", "unencrypted"),
        ("smtp://mail.example.org?tls=maybe", "tls must be"),
        ("smtp://mail.example.org?verify=no", "unknown option"),
    ],
)
def test_bad_smtp_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_smtp_url(url)
    assert "secret" not in str(info.value)


def test_allow_insecure_permits_plain_smtp_to_a_remote_host() -> None:
    settings = parse_smtp_url("smtp://relay.example.org?tls=none", allow_insecure=True)
    assert settings.security == TLS_NONE


def test_settings_from_the_workspace(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    assert smtp_settings(workspace) is None  # no URL: the embedded server is used
    settings = smtp_settings(workspace, "smtps://u:p@mail.example.org")
    assert settings is not None
    assert settings.messages_per_connection == workspace.config.send.messages_per_connection
    assert settings.timeout == workspace.config.send.timeout_seconds


# --- rate limit -------------------------------------------------------------------------------


def test_rate_limiter_spaces_messages_on_a_fake_clock() -> None:
    now = [100.0]
    limiter = RateLimiter(4.0, clock=lambda: now[0])
    sent_at: list[float] = []
    while len(sent_at) < 5:
        wait = limiter.try_take()
        if wait:
            assert limiter.ready_in() == wait  # looking takes nothing
            now[0] += wait
        else:
            sent_at.append(now[0])
    assert [round(b - a, 6) for a, b in itertools.pairwise(sent_at)] == [0.25] * 4
    now[0] += 10  # idle time does not build up a burst
    assert limiter.try_take() == 0.0
    assert limiter.try_take() == 0.25
    unlimited = RateLimiter(0)
    assert [unlimited.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]


# --- the embedded server ----------------------------------------------------------------------


def test_embedded_server_stores_each_message_atomically(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    with EmbeddedServer(folder) as server:
        assert server.url == f"smtp://127.0.0.1:{server.port}" and server.port > 0
        settings = parse_smtp_url(server.url, timeout=5)
        with SmtpConnection(settings) as connection:
            for number in range(3):
                outcome = connection.send(SENDER, [f"r{number}@example.net"], MESSAGE)[0]
                assert outcome.status is Status.ACCEPTED
            assert connection.pipelining  # advertised by the embedded server
        stored = server.messages
    assert [m.recipients for m in stored] == [(f"r{n}@example.net",) for n in range(3)]
    assert all(m.mail_from == SENDER for m in stored)
    assert all(m.path.read_bytes() == MESSAGE for m in stored)
    assert sorted(p.name for p in folder.iterdir()) == sorted(m.path.name for m in stored)
    assert all(p.suffix == ".eml" for p in folder.iterdir())  # no temporary files left


def test_outbox_is_in_the_workspace(workspace: Workspace) -> None:
    assert outbox_dir(workspace) == workspace.root / "outbox"


def test_rule3_dkim_verifies_on_the_bytes_the_server_received(tmp_path: Path) -> None:
    pem = (DKIM_DIR / "test-only-rsa2048.private.pem").read_bytes()
    record = (DKIM_DIR / "test-only-rsa2048.dns.txt").read_bytes().strip()
    settings = MessageSettings(
        publication="The Harbour Letter",
        from_name="The Harbour Letter",
        from_address="letter@harbour.example.org",
        base_url="https://harbour.example.org",
        secret_keys=("k",),
    )
    template = build_template(
        settings,
        subject="Ferries — and cafés",
        # as render writes them: slots are tokens of the signing key's grammar
        html_body=SlotGrammar.for_keys(("k",)).mark(
            "<p>Hi %%name%%</p>\n<p>.dot line</p>\n<a href='%%unsubscribe_url%%'>Leave</a>"
        ),
        text_body=SlotGrammar.for_keys(("k",)).mark(
            ".dot line\nHi %%name%%\n%%unsubscribe_url%%\n"
        ),
        campaign="w48",
        list_id=1,
        list_name="main",
        dkim_signer=DkimSigner(pem, domain="harbour.example.org", selector="s1"),
    )
    recipient = Recipient(5, "nuno@example.net", "Nuño Álvarez")
    data = template.personalise(recipient)
    with EmbeddedServer(tmp_path / "outbox") as server:
        with SmtpConnection(server.settings()) as connection:
            sender = template.envelope_sender(recipient)
            assert connection.send(sender, [recipient.email], data)[0].status is Status.ACCEPTED
        received = server.messages[0]
    assert received.path.read_bytes() == data
    assert received.mail_from == sender
    assert dkim.verify(received.path.read_bytes(), dnsfunc=lambda name, timeout=5: record)
