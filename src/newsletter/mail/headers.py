"""Header values: display names, subjects and mailboxes that are safe in 7-bit headers.

From/To display names are RFC 2047 encoded words (UTF-8, base64, at most 75 characters
each, folded one per line) when not plain ASCII, a quoted string when they hold specials;
the Subject likewise. CR, LF and other control characters in any value become spaces, so
a name can never inject a header.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

ONE_CLICK = "List-Unsubscribe=One-Click"
TEST_SUBJECT_PREFIX = "[TEST] "
TEST_HEADER = "X-Newsletter-Test"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_ADDRESS_UNSAFE = re.compile(r"[\s<>\"\\,;()\[\]]")
_WORD_BYTES = 39  # UTF-8 bytes per encoded word: 52 base64 chars, 64 with the wrapper


def clean_value(value: str) -> str:
    """``value`` with CR, LF and other control characters turned into single spaces."""
    return _CONTROL.sub(" ", value)


def header_unsafe(value: str, *, address: bool) -> bool:
    """Whether ``value`` cannot go into a 7-bit header as it is (non-ASCII, control
    characters; for an ``address``, also spaces, brackets, quotes, commas and the like)."""
    return (
        not value.isascii()
        or bool(_CONTROL.search(value))
        or (address and bool(_ADDRESS_UNSAFE.search(value)))
    )


def encoded_words(text: str) -> list[str]:
    """RFC 2047 encoded words (UTF-8, base64) for ``text``, each under 75 characters.

    Words split at character boundaries; adjacent words decode back to ``text``.
    """
    words: list[str] = []
    chunk = b""
    for char in text:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > _WORD_BYTES:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += data
    if chunk or not words:
        words.append(chunk.decode("utf-8"))
    return [
        "=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words
    ]


def _fold_words(words: Sequence[str]) -> str:
    """Join header words with CRLF + space so every line stays short."""
    return "\r\n ".join(words)


def unstructured_header(value: str) -> str:
    """An unstructured header value (Subject): ASCII folded at spaces, else encoded words."""
    value = clean_value(value).strip()
    if value.isascii() and "=?" not in value and "%%" not in value and len(value) <= 900:
        lines: list[str] = []
        current = ""
        for word in value.split(" "):
            if current and len(current) + 1 + len(word) > 70:
                lines.append(current)
                current = word
            else:
                current = f"{current} {word}" if current else word
        lines.append(current)
        return "\r\n ".join(lines)
    return _fold_words(encoded_words(value))


def display_name(name: str) -> str:
    """A display name as an atom phrase, a quoted string or encoded words ("" if empty)."""
    name = " ".join(clean_value(name).split())
    if not name:
        return ""
    if name.isascii() and "=?" not in name and "%%" not in name and len(name) <= 70:
        if _ATEXT_PHRASE.fullmatch(name):
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _fold_words(encoded_words(name))


def mailbox(name: str, address: str) -> str:
    """``Name <address>`` (or ``<address>``) for From/To/Reply-To.

    ``address`` must be a bare address (no spaces, brackets, commas or line breaks);
    anything else raises ValueError, since it can only come from a caller bug.
    """
    if not address or _ADDRESS_UNSAFE.search(address) or _CONTROL.search(address):
        raise ValueError(f"not a bare email address: {address!r}")
    phrase = display_name(name)
    return f"{phrase} <{address}>" if phrase else f"<{address}>"
