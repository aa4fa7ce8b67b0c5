"""The images an issue hosts: the ``media/`` folder of an issue folder, its file names and
the URLs mails give them.

``compose.images`` writes them (metadata stripped, scaled, JPEG or PNG, named after a
hash of their bytes); ``web.media`` serves them, and the static archive copies them.

In: an issue folder, or a workspace. Out: its media files, their names, types and URLs.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

MEDIA_DIR = "media"
# what compose writes: hex digits of the sha256 of the bytes, then the format's extension
MEDIA_NAME = re.compile(r"[0-9a-f]{20}\.(?:jpg|png)")
CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}


def media_url(ws: Workspace, name: str) -> str:
    """``{base_url}/media/<name>``: where a mail finds a hosted image."""
    return f"{ws.base_url.rstrip('/')}/{MEDIA_DIR}/{name}"


def media_name_of(ws: Workspace, url: str) -> str:
    """The media file name when ``url`` is one of this workspace's hosted images, else ""."""
    prefix = f"{ws.base_url.rstrip('/')}/{MEDIA_DIR}/"
    name = url[len(prefix) :] if url.startswith(prefix) else ""
    return name if MEDIA_NAME.fullmatch(name) else ""


def content_type(name: str) -> str:
    """The Content-Type of a media file name (``image/jpeg`` or ``image/png``)."""
    return CONTENT_TYPES[Path(name).suffix]


def media_files(issue_dir: Path) -> list[Path]:
    """The hosted images of one issue folder (``issue_dir/media/*``), sorted by name.

    Only files named as compose names them count; a missing media/ folder gives [].
    """
    folder = issue_dir / MEDIA_DIR
    try:
        entries = sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [entry for entry in entries if MEDIA_NAME.fullmatch(entry.name) and entry.is_file()]


def media_index(issues_dir: Path) -> dict[str, Path]:
    """Media file name -> its file, over every issue folder in ``issues_dir``.

    Names are content hashes, so two issues holding the same name hold the same bytes.
    """
    index: dict[str, Path] = {}
    try:
        folders = sorted(issues_dir.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return index
    for folder in folders:
        if folder.is_dir():
            for path in media_files(folder):
                index.setdefault(path.name, path)
    log.debug("media index: %d files under %s", len(index), issues_dir)
    return index
