"""The issue folder: its name, how the ledger and the scheduler name it, writing its
files atomically, rendering it again, and reading back its fresh render.

An issue folder holds ``issue.json`` (the hand-editable source of truth), the rendered
``issue.html`` and ``issue.txt`` as a reader sees them (slots filled with the
publication's neutral stand-ins), and the parts the sender fills per recipient,
``.send.html`` and ``.send.txt`` (slots unfilled), with ``.render.json`` (see
``render.stamp``) saying what those were rendered from, so ``load_rendered`` can reuse
them while they are fresh. Every write goes to a temporary name first and is renamed
into place, so a failed compose or render never leaves a half-written folder or file
behind.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from newsletter.compose.issue_file import ISSUE_JSON, decode_issue, issue_json, read_issue_bytes
from newsletter.errors import FolderTakenError, RenderError
from newsletter.files import atomic_write, new_temp_dir
from newsletter.media import MEDIA_DIR
from newsletter.models import Issue
from newsletter.render.filters import long_date
from newsletter.render.pipeline import Rendered, render_issue, rendered_from
from newsletter.render.stamp import (
    SEND_HTML,
    SEND_TXT,
    STAMP_FILE,
    render_fingerprint,
    stamp_text,
    stamped_parts,
)
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

ISSUE_HTML = "issue.html"
ISSUE_TXT = "issue.txt"
SLUG_MAX = 60


@dataclass(frozen=True)
class RenderResult:
    """What ``render_issue_folder`` rewrote: the ``folder``, render ``warnings``, and
    ``html_bytes``, the size of issue.html."""

    folder: Path
    warnings: list[str]
    html_bytes: int


# --- names -----------------------------------------------------------------------------------


def issue_key(ws: Workspace, issue_dir: Path) -> str:
    """The issue folder as the ledger and the schedule store it: relative to the workspace
    when inside it (so ``issues/x`` and ``/abs/ws/issues/x`` are the same), else absolute."""
    folder = issue_dir if issue_dir.is_absolute() else Path.cwd() / issue_dir
    folder = folder.resolve()
    try:
        return folder.relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        return str(folder)


def slugify(text: str, max_length: int = SLUG_MAX) -> str:
    """``"Weekly brief — Köln!"`` -> ``"weekly-brief-koln"`` (ASCII, at most ``max_length``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rsplit("-", 1)[0] or slug[:max_length]
    return slug or "issue"


def _candidate_folders(base: Path) -> Iterator[Path]:
    yield base
    number = 2
    while True:
        yield base.with_name(f"{base.name}-{number}")
        number += 1


def default_folder(ws: Workspace, issue: Issue) -> Path:
    """``<issues_dir>/<date>-<slug of subject>``, with -2, -3 … added when taken.

    The issue's date written out in the subject is left out of the slug, since the
    folder name starts with it already.
    """
    subject = issue.subject.replace(long_date(date.fromisoformat(issue.date)), " ")
    base = ws.issues_dir / f"{issue.date}-{slugify(subject)}"
    return next(path for path in _candidate_folders(base) if not path.exists())


def is_empty_dir(folder: Path) -> bool:
    """Whether ``folder`` is a folder with nothing in it."""
    return folder.is_dir() and not any(folder.iterdir())


# --- writing, atomically ---------------------------------------------------------------------


def _rendered_files(rendered: Rendered) -> dict[str, str]:
    """File name -> text of the rendered parts: the reader's view and the parts to send."""
    return {
        ISSUE_HTML: rendered.reader_html,
        ISSUE_TXT: rendered.reader_text,
        SEND_HTML: rendered.html,
        SEND_TXT: rendered.text,
    }


def write_media(folder: Path, media: dict[str, bytes]) -> None:
    """Write the hosted images ``media`` (name -> bytes) into ``folder``/media/, each by a
    rename; a name already there holds the same bytes (names are content hashes)."""
    if not media:
        return
    (folder / MEDIA_DIR).mkdir(exist_ok=True)
    for name, data in media.items():
        if not (folder / MEDIA_DIR / name).is_file():
            atomic_write(folder / MEDIA_DIR / name, data)


def _write_whole_folder(folder: Path, files: dict[str, str], media: dict[str, bytes]) -> None:
    """Build ``files`` and ``media`` in a temporary sibling of ``folder`` and rename it into
    place."""
    staging = new_temp_dir(folder.parent, folder.name)
    try:
        write_media(staging, media)
        for name, text in files.items():
            atomic_write(staging / name, text)
        # rename() onto an empty directory replaces it; onto a full one it fails
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_issue_folder(
    folder: Path,
    issue: Issue,
    rendered: Rendered,
    *,
    exclusive: bool = False,
    fingerprint: str | None = None,
    media: dict[str, bytes] | None = None,
) -> None:
    """Write issue.json, issue.html and issue.txt (the reader's view), the parts to
    send (.send.html, .send.txt) and the hosted images ``media`` (media/<name>) into
    ``folder``, atomically.

    With ``fingerprint`` (``render.stamp.render_fingerprint`` of the issue.json text
    written here) the render stamp .render.json is written last; without, an existing
    one is removed. A new (or empty) folder is built as a temporary sibling and renamed
    into place, so it appears whole or not at all. In an existing folder each file is
    replaced by a rename, unless ``exclusive``: then a folder that is not empty (even
    one another process made a moment ago) raises FolderTakenError and is left alone.
    Raises RenderError if the folder cannot be written.
    """
    files = {ISSUE_JSON: issue_json(issue), **_rendered_files(rendered)}
    if fingerprint is not None:
        files[STAMP_FILE] = stamp_text(fingerprint, rendered.html, rendered.text)
    taken = FolderTakenError(
        f"{folder}: exists and is not empty", hint="name a new or empty folder"
    )
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists() and not is_empty_dir(folder):
            if exclusive:
                raise taken
            write_media(folder, media or {})
            for name, text in files.items():
                atomic_write(folder / name, text)
            if fingerprint is None:
                (folder / STAMP_FILE).unlink(missing_ok=True)
            return
        _write_whole_folder(folder, files, media or {})
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and exclusive:
            raise taken from None
        raise RenderError(
            f"{folder}: cannot write the issue folder ({exc.strerror or exc})",
            hint="check the folder exists, is writable and is not in use",
        ) from None


def write_rendered(folder: Path, rendered: Rendered, *, fingerprint: str | None = None) -> None:
    """Replace issue.html, issue.txt, .send.html and .send.txt in ``folder``, each by a
    rename; issue.json stays.

    Then the render stamp: written for ``fingerprint``, else removed. It goes last, so
    a reader who finds the new parts beside the old stamp sees them disagree.
    """
    try:
        for name, text in _rendered_files(rendered).items():
            atomic_write(folder / name, text)
        if fingerprint is None:
            (folder / STAMP_FILE).unlink(missing_ok=True)
        else:
            atomic_write(folder / STAMP_FILE, stamp_text(fingerprint, rendered.html, rendered.text))
    except OSError as exc:
        raise RenderError(f"{folder}: cannot write ({exc.strerror or exc})") from None


# --- rendering the folder --------------------------------------------------------------------


def render_issue_folder(ws: Workspace, folder: Path) -> RenderResult:
    """Re-render ``folder`` from its issue.json (never re-summarising) -> RenderResult.

    Rewrites issue.html, issue.txt and the render stamp atomically; a missing folder or
    issue.json, or an invalid one, raises RenderError naming the file, line and field.
    A teaser image naming a local file is hosted first (media/ and issue.json then point
    at it, the path written kept as image_original); a missing or unusable file raises
    SourceError naming it.
    """
    from newsletter.compose.hosting import host_issue_images  # Pillow: only when rendering

    raw = read_issue_bytes(folder)
    issue = decode_issue(raw, folder / ISSUE_JSON)
    hosted, hosting = host_issue_images(ws, folder, issue)
    if hosting.media:
        try:
            write_media(folder, hosting.media)
            raw = issue_json(hosted).encode("utf-8")
            atomic_write(folder / ISSUE_JSON, raw)
        except OSError as exc:
            raise RenderError(f"{folder}: cannot write ({exc.strerror or exc})") from None
        issue = hosted
    # taken before rendering: a template edited meanwhile makes the stamp stale, not wrong
    name = folder.resolve().name
    fingerprint = render_fingerprint(ws, raw, name)
    rendered = render_issue(ws, issue, folder_name=name)
    write_rendered(folder, rendered, fingerprint=fingerprint)
    return RenderResult(
        folder=folder,
        warnings=list(rendered.warnings),
        html_bytes=len(rendered.reader_html.encode("utf-8")),
    )


def load_rendered(ws: Workspace, folder: Path) -> Rendered:
    """``folder``'s issue rendered -> Rendered: .send.html and .send.txt as they are when
    the render stamp proves them fresh (see ``render.stamp``), else rendered now from
    issue.json (the folder is left as it is).

    Either way the subject, preheader and warnings come from issue.json as
    ``render_issue`` gives them. Raises RenderError for a missing or invalid issue.json
    or a template problem.
    """
    raw = read_issue_bytes(folder)
    issue = decode_issue(raw, folder / ISSUE_JSON)
    # a fresh render spares the send importing and running the whole render stack
    parts = stamped_parts(ws, folder, raw)
    if parts is not None:
        log.debug("%s: using the parts as rendered (render stamp matches)", folder)
        html, text = parts
        return rendered_from(ws, issue, html=html, text=text, web_parts=_reader_view(folder))
    log.debug("%s: rendering issue.json now (no fresh render in the folder)", folder)
    return render_issue(ws, issue, folder_name=folder.resolve().name)


def _reader_view(folder: Path) -> tuple[str, str] | None:
    """``folder``'s issue.html and issue.txt (the web version as written beside the parts
    to send), or None when either cannot be read."""
    try:
        return (
            (folder / ISSUE_HTML).read_text(encoding="utf-8"),
            (folder / ISSUE_TXT).read_text(encoding="utf-8"),
        )
    except (OSError, UnicodeDecodeError):
        return None
