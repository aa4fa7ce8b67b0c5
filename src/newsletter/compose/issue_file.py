"""issue.json: read it (errors name the file, line and field), write its text.

What the file may hold is declared once, by ``models.Issue`` and ``models.Teaser``;
this module only parses, validates against them and points at the offending line.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from newsletter.errors import RenderError
from newsletter.files import read_bytes
from newsletter.models import Issue

ISSUE_JSON = "issue.json"

_HINT = "fix issue.json and run newsletter render again"
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@functools.cache
def _issue_adapter() -> TypeAdapter[Issue]:
    return TypeAdapter(Issue)


# --- where a field is: only looked for once validation failed ------------------------------


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _skip_space(text: str, offset: int) -> int:
    return _WHITESPACE.match(text, offset).end()  # type: ignore[union-attr]


def _members(text: str, start: int) -> dict[str | int, tuple[int, int]]:
    """Key (object) or index (array) -> (offset of the key or element, offset of its value)
    for the JSON object or array opening at ``start`` of ``text``, which is valid JSON."""
    members: dict[str | int, tuple[int, int]] = {}
    is_object = text[start] == "{"
    offset = _skip_space(text, start + 1)
    while text[offset] not in "]}":
        name: str | int = len(members)
        key_offset = offset
        if is_object:
            name, offset = _DECODER.raw_decode(text, offset)
            offset = _skip_space(text, _skip_space(text, offset) + 1)  # past the ":"
        _, end = _DECODER.raw_decode(text, offset)
        members[name] = (key_offset, offset)
        offset = _skip_space(text, end)
        if text[offset] == ",":
            offset = _skip_space(text, offset + 1)
    return members


def _field_line(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The line of the field at ``loc`` (or of the nearest object holding it) in ``text``."""
    offset, line = _skip_space(text, 0), None
    for part in loc:
        if text[offset] not in "{[":
            break
        members = _members(text, offset)
        if text[offset] == "{":
            line = _line_of(text, offset)
            if part in members and isinstance(part, str):
                line = _line_of(text, members[part][0])
        if part not in members:
            break
        offset = members[part][1]
    else:
        if text[offset] == "{":
            line = _line_of(text, offset)
    return line


def _field_name(loc: tuple[str | int, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else part)
    return name or "(top level)"


def _problem(item: Any) -> str:
    if item["type"] == "unexpected_keyword_argument":
        return "unknown field (check the spelling)"
    if item["type"] == "missing":
        return "missing"
    return str(item["msg"]).removeprefix("Value error, ")


# --- reading ------------------------------------------------------------------------------


def parse_issue(text: str, path: Path) -> Issue:
    """issue.json ``text`` (read from ``path``, named in errors) -> Issue.

    Raises RenderError naming the file, the line and the field of the first problem.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RenderError(
            f"{path}, line {exc.lineno}: invalid JSON: {exc.msg}", hint=_HINT
        ) from None
    if not isinstance(data, dict):
        raise RenderError(
            f"{path}, line 1: must hold one JSON object with subject, date and teasers", hint=_HINT
        )
    try:
        return _issue_adapter().validate_python(data)
    except ValidationError as exc:
        item = exc.errors()[0]
        loc = tuple(item["loc"])
        line = _field_line(text, loc) or 1
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RenderError(
            f"{path}, line {line}: {_field_name(loc)}: {_problem(item)}{more}", hint=_HINT
        ) from None


def read_issue(folder: Path) -> Issue:
    """Read ``folder``/issue.json -> Issue; a missing or invalid file -> RenderError."""
    return decode_issue(read_issue_bytes(folder), folder / ISSUE_JSON)


def read_issue_bytes(folder: Path) -> bytes:
    """The bytes of ``folder``/issue.json; a missing folder or file -> RenderError."""
    path = folder / ISSUE_JSON
    if not folder.is_dir():
        raise RenderError(
            f"{folder}: no such issue folder",
            hint="check the path, or run newsletter compose to make one",
        )
    hint = "an issue folder is made by newsletter compose"
    return read_bytes(path, RenderError, missing_hint=hint)


def decode_issue(raw: bytes, path: Path) -> Issue:
    """The bytes of issue.json (read from ``path``, named in errors) -> Issue; RenderError
    naming the line when they are not UTF-8 or not a valid issue."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of(raw.decode("utf-8", "replace"), exc.start)
        raise RenderError(f"{path}, line {line}: not UTF-8 text", hint="save it as UTF-8") from None
    return parse_issue(text, path)


# --- writing ------------------------------------------------------------------------------


def issue_json(issue: Issue) -> str:
    """The text of issue.json for ``issue``: pretty, UTF-8 characters kept as they are."""
    return json.dumps(issue.to_dict(), ensure_ascii=False, indent=2) + "\n"
