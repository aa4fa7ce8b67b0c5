"""The messages of the paths ``newsletter bounces`` is given: .eml files, Maildirs, mboxes.

``read_messages(paths, unreadable)`` yields (name, bytes) per message and lists what
cannot be read instead of raising; nothing is moved, flagged or deleted.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator, Sequence
from pathlib import Path


def read_messages(
    paths: Sequence[Path], unreadable: list[tuple[str, str]]
) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every message under ``paths``; failures go to ``unreadable``."""
    for path in paths:
        if path.is_dir():
            if not ((path / "new").is_dir() or (path / "cur").is_dir()):
                unreadable.append((str(path), "a folder but not a Maildir (no new/ or cur/)"))
                continue
            yield from _maildir_messages(path, unreadable)
            continue
        try:
            with path.open("rb") as handle:
                head = handle.read(5)
        except OSError as exc:
            unreadable.append((str(path), _why(exc)))
            continue
        if head == b"From ":  # the mbox separator line, which no message starts with
            mbox = mailbox.mbox(path, factory=None, create=False)
            yield from _mbox_messages(mbox, path, unreadable)
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            unreadable.append((str(path), _why(exc)))
            continue
        if not data.strip():
            unreadable.append((str(path), "empty file"))
            continue
        yield str(path), data


def _maildir_messages(path: Path, unreadable: list[tuple[str, str]]) -> Iterator[tuple[str, bytes]]:
    """Every message file in ``path``/new and ``path``/cur (whichever exist), read-only.

    Read by hand rather than with ``mailbox.Maildir``, which fails on a folder missing
    new/ or cur/ (mail delivery creates new/ first; some tools keep only cur/), and
    which would move nothing here anyway. Names starting with a dot are not messages.
    """
    for subdir in ("new", "cur"):
        folder = path / subdir
        if not folder.is_dir():
            continue
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(folder)
                if not entry.name.startswith(".") and entry.is_file()
            )
        except OSError as exc:
            unreadable.append((str(folder), _why(exc)))
            continue
        for name in names:
            file = folder / name
            try:
                data = file.read_bytes()
            except OSError as exc:
                unreadable.append((str(file), _why(exc)))
                continue
            yield str(file), data


def _mbox_messages(
    box: mailbox.mbox, path: Path, unreadable: list[tuple[str, str]]
) -> Iterator[tuple[str, bytes]]:
    """Every message of the mbox file at ``path`` as (name, bytes), in order, read-only."""
    try:
        keys = sorted(box.keys())
    except OSError as exc:
        unreadable.append((str(path), _why(exc)))
        return
    for number, key in enumerate(keys, 1):
        name = f"{path} [message {number}]"
        try:
            data = box.get_bytes(key)
        except (OSError, KeyError) as exc:
            unreadable.append((name, getattr(exc, "strerror", None) or str(exc)))
            continue
        yield name, data


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
