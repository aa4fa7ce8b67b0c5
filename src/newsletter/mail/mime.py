"""Quoted-printable bodies with slots: encoded once per send, filled by plain joining.

Both parts are UTF-8 in quoted-printable, never 8bit: 8bit would need the server's
8BITMIME and HTML lines under 998 octets (premailer writes longer ones), and relays that
downgrade 8bit to 7bit break DKIM signatures; QP is 7-bit clean everywhere, so the bytes
we sign are the bytes every hop passes on.

To fill QP bodies by plain joining, each slot sits alone between soft line breaks: the
template holds ``...text=\\r\\n%%name%%=\\r\\n...``. A value is encoded on its own (UTF-8,
``=`` -> ``=3D``, non-ASCII -> ``=XX``, HTML-escaped first in the HTML part) and split
into lines of at most 75 characters plus ``=``, so any name of any length keeps every
line within the 76-character QP limit; decoding joins the soft breaks away, so the reader
sees exactly the value in place. The common case (a short ASCII value) needs no work.
"""

from __future__ import annotations

import re

from newsletter.mail.slots import SlotGrammar

_QP_WIDTH = 75  # characters before the "=" of a soft line break (76 in all)
_QP_TABLE = tuple(
    chr(b) if (33 <= b <= 126 and b != 61) or b in (9, 32) else f"={b:02X}" for b in range(256)
)
# template text also encodes "%", so the only "%%" left in an encoded part are our slots
_QP_LITERAL_TABLE = tuple("=25" if b == 37 else token for b, token in enumerate(_QP_TABLE))
_QP_PLAIN = re.compile(rb"[\t !-<>-~]*")  # bytes that QP leaves as they are
# A "." opening a line is encoded: no line of an encoded part then starts with a dot, so
# SMTP dot-stuffing has nothing to do and the transport skips a copy of every message.
_QP_LEADING_DOT = "=2E"


def qp_value(value: str) -> bytes:
    """A slot value as a QP chunk: lines of <= 75 chars joined by soft breaks, no final one."""
    raw = value.encode("utf-8")
    if len(raw) <= _QP_WIDTH and _QP_PLAIN.fullmatch(raw) and not raw.startswith(b"."):
        return raw
    lines: list[str] = []
    line: list[str] = []
    width = 0
    for byte in raw:
        token = _QP_TABLE[byte]
        if width + len(token) > _QP_WIDTH:
            lines.append("".join(line))
            line, width = [], 0
        if not width and token == ".":
            token = _QP_LEADING_DOT
        line.append(token)
        width += len(token)
    lines.append("".join(line))
    return "=\r\n".join(lines).encode("ascii")


def _slot_pieces(line: str, grammar: SlotGrammar) -> list[tuple[bool, str]]:
    """Split ``line`` into (is_slot, text) pieces; only ``grammar``'s tokens are slots."""
    pieces: list[tuple[bool, str]] = []
    pos = 0
    for match in grammar.pattern.finditer(line):
        pieces.append((False, line[pos : match.start()]))
        pieces.append((True, match.group(0)))
        pos = match.end()
    pieces.append((False, line[pos:]))
    return pieces


def qp_encode_with_slots(text: str, grammar: SlotGrammar) -> str:
    """Quoted-printable (UTF-8, CRLF, lines <= 76) of ``text``, ``grammar``'s slot tokens
    kept alone on a line; any other ``%%word%%`` is text (its "%" written =25).

    Each slot token is preceded and followed by a soft line break, so whatever QP chunk
    replaces it (see ``qp_value``) keeps every line within the limit. A "." that would
    open a line is written "=2E" (see ``_QP_LEADING_DOT``).
    """
    out: list[str] = []
    for source_line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line: list[str] = []
        width = 0
        for is_slot, piece in _slot_pieces(source_line, grammar):
            if is_slot:
                if line:
                    out.append("".join(line) + "=")
                    line, width = [], 0
                out.append(piece + "=")
                continue
            for char in piece:
                token = "".join(_QP_LITERAL_TABLE[b] for b in char.encode("utf-8"))
                if width + len(token) > _QP_WIDTH:
                    out.append("".join(line) + "=")
                    line, width = [], 0
                if not width and token == ".":
                    token = _QP_LEADING_DOT
                line.append(token)
                width += len(token)
        # whitespace before a hard line break would be stripped in transit: encode it
        if line and line[-1] in (" ", "\t"):
            last = f"={ord(line.pop()):02X}"
            if width + 2 > _QP_WIDTH + 1:
                out.append("".join(line) + "=")
                line = []
            line.append(last)
        out.append("".join(line))
    return "\r\n".join(out)


def mime_part(boundary: str, subtype: str, content: str) -> str:
    """One ``text/<subtype>`` UTF-8 quoted-printable part of a multipart body."""
    return (
        f"--{boundary}\r\n"
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n" + content + "\r\n"
    )
