"""Printing what others supplied: no control character reaches the terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.textsafe import TerminalWriter, json_for_terminal, printable

CLEAR = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
FAKE = "\rDone. 0 errors"


def test_printable_drops_escape_sequences_carriage_returns_and_bidi_marks() -> None:
    text = f"Ann{CLEAR}{TITLE}{FAKE}\x9b1m\u202eevil\u2066\tx\x00\x7f"
    assert printable(text) == "Ann[2J]0;pwnedDone. 0 errors1mevilx"
    assert printable("one\ntwo\r\nthree", keep_newlines=True) == "one\ntwo\nthree"
    assert printable("Zoë Ångström 李") == "Zoë Ångström 李"


def test_json_for_terminal_escapes_what_json_dumps_leaves_raw() -> None:
    data = {"name": f"Ann{CLEAR}\x9b\u202e"}
    shown = json_for_terminal(json.dumps(data, ensure_ascii=False, indent=2))
    assert all(char not in shown for char in ("\x1b", "\x9b", "\u202e"))
    assert json.loads(shown) == data


def test_terminal_writer_cleans_every_write() -> None:
    target = io.StringIO()
    writer = TerminalWriter(target)
    assert writer.write(f"a,{CLEAR}b\r\n") == len(f"a,{CLEAR}b\r\n")
    assert target.getvalue() == "a,[2Jb\n"


def test_extract_prints_an_articles_title_and_text_without_control_characters(
    tmp_path: Path, workspace_dir: Path
) -> None:
    article = tmp_path / "evil.md"
    article.write_text(
        f"# Harbour{CLEAR}{TITLE}\n\n"
        f"The ferry{FAKE} runs again from Monday, the harbour office said today, and "
        "the cafés on the quay will open early for the first crossings of the season.\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["-w", str(workspace_dir), "extract", str(article)])
    assert result.exit_code == 0, result.output
    assert "Harbour[2J]0;pwned" in result.stdout
    assert all(char not in result.stdout for char in ("\x1b", "\x07", "\r"))
