"""SmtpConnection against scripted aiosmtpd servers on loopback: outcomes per recipient.

Every outcome test runs with and without ESMTP PIPELINING.
"""

from __future__ import annotations

import math

import pytest

from newsletter.errors import DeliveryError
from newsletter.smtp.connection import SmtpConnection
from newsletter.smtp.outcome import Status
from newsletter.smtp.settings import TLS_NONE, SmtpSettings
from smtp_servers import (
    CLOSE_AFTER,
    DROP,
    HANG,
    MESSAGE,
    SENDER,
    ScriptedHandler,
    StartServer,
    plain,
)


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
def test_messages_per_connection_limit(
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
    connection = SmtpConnection(SmtpSettings(host="127.0.0.1", port=1, security=TLS_NONE))
    with pytest.raises(ValueError):
        connection.send("a b@example.net", ["x@example.net"], MESSAGE)
    assert connection.send(SENDER, [], MESSAGE) == []
