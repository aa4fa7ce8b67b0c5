"""A message checked and made ready for the wire: bare addresses as bytes, DATA dot-stuffed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_MAX_ADDRESS = 320


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
    """A bare address as bytes for MAIL FROM / RCPT TO; ValueError for anything that could
    break out of the angle brackets or the command line."""
    if not value or any(c in value for c in "<>\r\n ") or len(value) > _MAX_ADDRESS:
        raise ValueError(f"not a bare address: {value!r}")
    return value.encode("utf-8")


@dataclass(frozen=True)
class Envelope:
    """A message checked and ready for the wire: addresses as bytes, data dot-stuffed;
    ``unicode`` when an address needs SMTPUTF8."""

    sender: bytes
    recipients: list[str]
    rcpts: list[bytes]
    payload: bytes
    size: int
    unicode: bool

    @classmethod
    def of(
        cls, mail_from: str, recipients: Sequence[str], data: bytes, *, wire_ready: bool = False
    ) -> Envelope:
        """ValueError for a malformed address or data (see ``dot_stuff``)."""
        sender = _address(mail_from)
        rcpts = [_address(r) for r in recipients]
        unicode = not (sender.isascii() and all(r.isascii() for r in rcpts))
        payload = dot_stuff(data, wire_ready=wire_ready)
        return cls(sender, list(recipients), rcpts, payload, len(data), unicode)

    def commands(self, *, size: bool, eightbit: bool) -> list[bytes]:
        """MAIL FROM (with SIZE, SMTPUTF8 and BODY= as the server's extensions allow),
        one RCPT TO per recipient, then DATA."""
        params = b" SIZE=%d" % self.size if size else b""
        if self.unicode:
            params += b" SMTPUTF8 BODY=8BITMIME"
        elif eightbit and not self.payload.isascii():
            params += b" BODY=8BITMIME"
        commands = [b"MAIL FROM:<" + self.sender + b">" + params + b"\r\n"]
        commands += [b"RCPT TO:<" + r + b">\r\n" for r in self.rcpts]
        commands.append(b"DATA\r\n")
        return commands
