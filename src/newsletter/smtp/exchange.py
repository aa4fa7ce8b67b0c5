"""One SMTP transaction as a state machine on a non-blocking socket.

An ``Exchange`` sends MAIL, RCPT and DATA (in one write when the server offers ESMTP
PIPELINING, RFC 2920: two round trips per message instead of four), then the message,
reads the final reply and sends RSET after a failure. It never blocks: its owner waits
for socket readiness and pumps it, so one event loop can drive one exchange per
connection side by side (``deliver.lanes``); ``drive`` runs one to its end in the
calling thread.
``ReplyReader`` cuts complete SMTP replies out of the bytes received.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import time
from collections.abc import Sequence

from .outcome import Outcome, Status, outcome_of

log = logging.getLogger(__name__)

_MAX_LINE = 8192  # as smtplib: a longer reply line is a broken server
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

# what an Exchange is waiting for
_ENVELOPE, _BODY, _RESET, _DONE = "envelope", "body", "reset", "done"


class ReplyReader:
    """Complete SMTP replies out of the bytes received so far: ``feed`` bytes, ``take``
    one ``(code, text)`` reply (continuation lines joined with newlines) or None."""

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[bytes] = []

    def feed(self, data: bytes) -> None:
        """Add bytes as they came off the socket (any cut, even mid-line)."""
        self._buffer += data

    def take(self) -> tuple[int, bytes] | None:
        """The next complete reply -> ``(code, text)`` (code -1 if not three digits), or
        None until more bytes come; ConnectionError for a line past 8 KB."""
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
    ``done``, ``connection.SmtpConnection.finish`` turns it into outcomes. With ESMTP PIPELINING
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
        self._reader = ReplyReader()
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
                self.results[index] = outcome_of(self.recipients[index], code, text)
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
                    self.results[index] = outcome_of(self.recipients[index], *reply)
        data_reply = replies[-1] if len(replies) == len(self._commands) else None
        if data_reply is not None and data_reply[0] == 354:
            self._queue(self._payload if self.accepted else b".\r\n")
            self._dot_queued = bool(self.accepted)
            self.stage = _BODY
            return
        if data_reply is not None:
            for index in self.accepted:
                self.results[index] = outcome_of(self.recipients[index], *data_reply)
        elif self.accepted and replies[-1][0] == 421:
            for index in self.accepted:
                self.results[index] = outcome_of(self.recipients[index], *replies[-1])
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
                    outcome_of(recipient, *failing)
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


def drive(exchange: Exchange) -> Exchange:
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
