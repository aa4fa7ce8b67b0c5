"""Text that others supplied, made safe to print on a terminal.

A subscriber's name, an article's title or a server's reply may hold control characters:
ESC sequences that clear the screen or set the window title, a carriage return that
overwrites the start of a line with fake output, C1 controls some terminals act on, or
bidirectional overrides that reorder what is shown. ``printable`` removes them all;
``json_for_terminal`` escapes them instead, so JSON stays exact data.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

# C0 and C1 controls, DEL, and the bidirectional embedding, override and isolate marks
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` without control characters (line feeds kept when ``keep_newlines``)."""
    return (_UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE).sub("", text)


def json_for_terminal(text: str) -> str:
    """JSON ``text`` with every raw control character written as a ``\\uXXXX`` escape.

    ``json.dumps(ensure_ascii=False)`` escapes only C0; the rest stays raw. Inside JSON
    these characters can only be in strings, where the escape means the same character.
    """
    return _UNSAFE_BUT_NEWLINE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class TerminalWriter:
    """A text stream that drops control characters on the way to a terminal.

    Line ends (``\\r\\n`` as the csv module writes them) become ``\\n``.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` without its control characters -> the length of ``text``."""
        self._stream.write(printable(text.replace("\r\n", "\n"), keep_newlines=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
