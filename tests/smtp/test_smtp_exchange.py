"""Exchange as a pure state machine: the test plays the server on the other end of a
socket pair and pumps the exchange by hand, one step at a time."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from newsletter.smtp.envelope import Envelope
from newsletter.smtp.exchange import Exchange, ReplyReader
from newsletter.smtp.outcome import Status

ENVELOPE = Envelope.of("s@example.org", ["a@example.net", "b@example.net"], b"Hi.\r\n")
COMMANDS = ENVELOPE.commands(size=False, eightbit=False)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(client end, non-blocking; server end, blocking with a timeout)."""
    client, server = socket.socketpair()
    client.setblocking(False)
    server.settimeout(5)
    with client, server:
        yield client, server


def exchange_on(client: socket.socket, *, pipelining: bool, reused: bool = False) -> Exchange:
    return Exchange(
        client,
        ENVELOPE.recipients,
        COMMANDS,
        ENVELOPE.payload,
        pipelining=pipelining,
        reused=reused,
        timeout=5,
    )


def read(server: socket.socket, expected: bytes) -> None:
    """Assert the client sent exactly ``expected`` next."""
    data = b""
    while len(data) < len(expected):
        data += server.recv(65536)
    assert data == expected


def test_reply_reader_joins_continuation_lines_and_waits_for_the_rest() -> None:
    reader = ReplyReader()
    reader.feed(b"250-first\r\n250 sec")
    assert reader.take() is None
    reader.feed(b"ond\r\n354 go\r\n")
    assert reader.take() == (250, b"first\nsecond")
    assert reader.take() == (354, b"go")
    assert reader.take() is None


def test_pipelined_envelope_then_message_then_rset(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    exchange = exchange_on(client, pipelining=True)
    exchange.pump()
    read(server, b"".join(COMMANDS))  # the whole envelope in one write
    server.sendall(b"250 OK\r\n250 OK\r\n550 5.1.1 no such user\r\n354 go\r\n")
    exchange.pump()
    read(server, ENVELOPE.payload)
    assert exchange.final_dot_sent and not exchange.done
    server.sendall(b"250 queued\r\n")
    exchange.pump()
    read(server, b"RSET\r\n")  # one recipient failed: the session is reset for the next
    server.sendall(b"250 OK\r\n")
    exchange.pump()
    assert exchange.done and not exchange.broken
    first, second = exchange.results[0], exchange.results[1]
    assert (first.status, first.code) == (Status.ACCEPTED, 250)
    assert (second.status, second.enhanced) == (Status.PERMANENT, "5.1.1")


def test_without_pipelining_one_command_per_reply(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    exchange = exchange_on(client, pipelining=False)
    exchange.pump()
    for command in COMMANDS[:-1]:
        read(server, command)
        server.sendall(b"250 OK\r\n")
        exchange.pump()
    read(server, b"DATA\r\n")


def test_a_drop_after_the_final_dot_is_unknown(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    exchange = exchange_on(client, pipelining=True)
    exchange.pump()
    read(server, b"".join(COMMANDS))
    server.sendall(b"250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n")
    exchange.pump()
    read(server, ENVELOPE.payload)
    server.shutdown(socket.SHUT_RDWR)
    exchange.pump()
    assert exchange.done and exchange.broken
    assert {o.status for o in exchange.results.values()} == {Status.UNKNOWN}


def test_a_421_before_any_reply_on_a_reused_connection_is_lost(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    exchange = exchange_on(client, pipelining=True, reused=True)
    exchange.pump()
    read(server, b"".join(COMMANDS))
    server.sendall(b"421 4.7.0 closing\r\n")
    exchange.pump()
    assert exchange.done and exchange.lost and exchange.broken  # safe to send again


def test_expire_is_a_drop(pair: tuple[socket.socket, socket.socket]) -> None:
    client, _ = pair
    exchange = exchange_on(client, pipelining=True)
    exchange.pump()
    exchange.expire()
    assert exchange.done and exchange.broken
    assert {o.status for o in exchange.results.values()} == {Status.TRANSIENT}
