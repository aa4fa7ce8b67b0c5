"""What became of one recipient in one SMTP transaction.

- ``ACCEPTED``  250 after the final ".": delivered to the server, never send again.
- ``PERMANENT`` a 5xx for this recipient (code, enhanced status, reply): never retry.
- ``TRANSIENT`` a 4xx, a 421, or the connection lost before the final "." was sent:
                nothing was delivered, retry later.
- ``UNKNOWN``   the final "." was sent but no reply came (timeout or drop): the server
                may have taken the message. The ledger must record it as "maybe sent"
                and never count it as a failure to retry blindly (a retry may duplicate;
                the Message-ID is reused so receivers can de-duplicate).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


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


def reply_text(message: bytes | str) -> str:
    """A server reply as one line of at most 300 characters, for outcomes and errors."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return " ".join(text.split())[:300]


def outcome_of(recipient: str, code: int, message: bytes | str) -> Outcome:
    """The Outcome a reply ``code`` and text mean for ``recipient``."""
    text = reply_text(message)
    match = _ENHANCED.match(text)
    if 200 <= code < 300:
        status = Status.ACCEPTED
    elif 500 <= code < 600:
        status = Status.PERMANENT
    else:  # 4xx, and anything unexpected, may work later
        status = Status.TRANSIENT
    return Outcome(recipient, status, code, match.group(1) if match else "", text)
