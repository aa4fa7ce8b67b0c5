"""Reading one mail with the stdlib ``email`` package, for bounce and unsubscribe processing.

``parse_message`` parses a report once, each MIME body cut to ``SEGMENT_BUDGET`` bytes;
the helpers below read headers (never raising on a hostile value), the parts of a
report, the original it returns, and the keys that make a report count once.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.message import Message
from email.parser import BytesFeedParser, HeaderParser
from email.utils import getaddresses
from typing import Any

# header values that, once parsed, a hostile message might make the header registry choke on
HEADER_ERRORS = (HeaderParseError, ValueError, IndexError, TypeError, AttributeError)

# Bytes of each MIME segment (the text from one line starting with "--" to the next)
# handed to the parser; the rest of a long body is left out.
SEGMENT_BUDGET = 256 * 1024
_SEGMENT_START = re.compile(rb"^--", re.MULTILINE)


def parse_message(data: bytes) -> Message:
    """``data`` -> the message as the ``email`` package parses it, each body cut to its
    first ``SEGMENT_BUDGET`` bytes (at a line end).

    What classifies a report (the headers, the status or feedback block, the returned
    message's headers) sits at the start of its part; a returned original of several MB
    would otherwise cost the parser many times its size (text, lines, joined payload).
    Boundary lines start with "--", so every part still opens and closes where it did.
    """
    parser = BytesFeedParser(policy=policy.default)
    found = (match.start() for match in _SEGMENT_START.finditer(data))
    for start, end in itertools.pairwise(itertools.chain([0], found, [len(data)])):
        if end - start > SEGMENT_BUDGET:
            cut = data.rfind(b"\n", start, start + SEGMENT_BUDGET) + 1
            end = cut if cut > start else start + SEGMENT_BUDGET
        if end > start:
            parser.feed(data[start:end])
    message = parser.close()
    assert isinstance(message, Message)
    return message


def subparts(message: Message) -> Iterator[Message]:
    """The direct subparts of a multipart message (none for a malformed one)."""
    payload = message.get_payload()
    if isinstance(payload, list):
        yield from (part for part in payload if isinstance(part, Message))


def part_of_type(parts: list[Message], content_type: str) -> Message | None:
    return next((part for part in parts if part.get_content_type() == content_type), None)


def header_blocks(part: Message) -> list[Message]:
    """The header blocks the parser made of a message/delivery-status or feedback part."""
    return list(subparts(part))


def attached_headers(parts: list[Message]) -> Message | None:
    """The headers of the original message a report returns (message/rfc822 or headers)."""
    for part in parts:
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            inner = next(subparts(part), None)
            if inner is not None:
                return inner
        if content_type in ("text/rfc822-headers", "message/global-headers"):
            raw = part.get_payload(decode=True)  # undoes any transfer encoding
            if not isinstance(raw, bytes):
                continue
            text = raw.decode("utf-8", "replace")
            return HeaderParser(policy=policy.default).parsestr(text, headersonly=True)
    return None


def message_id_of(original: Message | None) -> str:
    """The Message-ID of an attached original, whitespace folded away ("" without one)."""
    return "".join(first_header(original, "Message-ID").split()) if original is not None else ""


def header_values(message: Message, name: str) -> list[str]:
    """Every value of header ``name`` as text ([] when absent or unparseable)."""
    try:
        return [str(value) for value in message.get_all(name) or []]
    except HEADER_ERRORS:
        return []


def first_header(message: Message, name: str) -> str:
    """The first value of header ``name`` as text ("" when absent or unparseable)."""
    values = header_values(message, name)
    return values[0] if values else ""


def mail_addresses(values: Iterable[str | None]) -> list[str]:
    """The bare addresses in header values (display names and brackets dropped)."""
    try:
        pairs = getaddresses([value for value in values if value])
    except HEADER_ERRORS:
        return []
    return [address.strip() for _, address in pairs if "@" in address]


def date_of(message: Message) -> datetime | None:
    """The message's Date as aware UTC, or None when missing or unreadable."""
    try:
        header: Any = message["Date"]
        value = getattr(header, "datetime", None)
    except HEADER_ERRORS:
        return None
    if not isinstance(value, datetime):
        return None
    # "-0000" (zone unknown) parses naive: it is UTC time all the same
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_HASH_CHUNK = 1 << 20  # hashing a report's bytes a chunk at a time, never a whole copy


def report_key(message_id: str, data: bytes) -> str:
    """The same key for the same report: its Message-ID, else its bytes (any line ends)."""
    if message_id:
        return hashlib.sha256(b"message-id:" + message_id.encode("utf-8", "replace")).hexdigest()
    digest = hashlib.sha256(b"bytes:")
    carry = b""  # a CR at a chunk's end may start a CRLF: hash it with the next chunk
    for offset in range(0, len(data), _HASH_CHUNK):
        chunk = carry + data[offset : offset + _HASH_CHUNK]
        carry = b"\r" if chunk.endswith(b"\r") else b""
        digest.update(chunk[: len(chunk) - len(carry)].replace(b"\r\n", b"\n"))
    digest.update(carry)
    return digest.hexdigest()


def original_key(original_message_id: str) -> str:
    """The same key for every report about one sent message ("" when it is unknown)."""
    if not original_message_id:
        return ""
    return hashlib.sha256(b"original:" + original_message_id.encode("utf-8", "replace")).hexdigest()


def delivery_id_of(original_message_id: str) -> int | None:
    """The delivery row id in one of our Message-IDs (``<label.ROWID@domain>``), else None.

    A Message-ID is not signed: the caller checks that the row is the subscriber's.
    """
    local = original_message_id.strip().strip("<>").rpartition("@")[0]
    _, dot, key = local.rpartition(".")
    # ASCII digits only, and few enough to fit a database integer
    if not dot or not (key.isascii() and key.isdigit()) or len(key) > 18:
        return None
    return int(key)
