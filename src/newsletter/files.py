"""Files that are either whole or untouched: ``atomic_write`` and ``atomic_writer``; and
``read_bytes``, reading a file a person is told about when it is missing or unreadable.

Every file the project writes for a person or another process to read (issue parts,
exports, dry-run messages, the outbox) goes through here: the bytes go to a temporary
file beside the target, are flushed to disk, and a rename puts them in place, so a
crash or a full disk never leaves half a file under the real name.

The temporary file gets the mode a plain ``open()`` would give (0666 less the umask),
or the mode of the file it replaces, since ``tempfile.mkstemp``'s 0600 would stick
after the rename.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

from newsletter.errors import NewsletterError


def read_bytes(path: Path, error: type[NewsletterError], *, missing_hint: str) -> bytes:
    """The bytes of ``path``; ``error`` naming it when it is missing (with ``missing_hint``)
    or cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: not found", hint=missing_hint) from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None


def new_temp_file(folder: Path, name: str) -> Path:
    """A new, empty, hidden file in ``folder`` named after ``name`` -> its path."""
    while True:
        path = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue


def new_temp_dir(parent: Path, name: str) -> Path:
    """A new, empty, hidden folder in ``parent`` named after ``name`` -> its path, with
    the mode a plain ``mkdir`` gives (``mkdtemp``'s 0700 would stick after a rename)."""
    while True:
        path = parent / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            path.mkdir(0o777)
            return path
        except FileExistsError:
            continue


@overload
def atomic_writer(
    path: Path, *, binary: Literal[False] = ..., newline: str | None = ..., sync: bool = ...
) -> contextlib.AbstractContextManager[IO[str]]: ...
@overload
def atomic_writer(
    path: Path, *, binary: Literal[True], newline: str | None = ..., sync: bool = ...
) -> contextlib.AbstractContextManager[IO[bytes]]: ...
def atomic_writer(
    path: Path, *, binary: bool = False, newline: str | None = "\n", sync: bool = True
) -> contextlib.AbstractContextManager[IO[Any]]:
    """A context manager giving a handle (UTF-8 text, or bytes with ``binary``) whose
    content replaces ``path`` when the block ends without an exception; an exception
    leaves ``path`` as it was and no temporary file behind. ``sync`` flushes to disk
    before the rename (off where losing the file in a power cut costs nothing)."""
    return _atomic_writer(path, binary=binary, newline=newline, sync=sync)


@contextlib.contextmanager
def _atomic_writer(
    path: Path, *, binary: bool, newline: str | None, sync: bool
) -> Iterator[IO[Any]]:
    temp = new_temp_file(path.parent, path.name)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temp, stat.S_IMODE(os.stat(path).st_mode))
        text = not binary
        with open(
            temp,
            "w" if text else "wb",
            encoding="utf-8" if text else None,
            newline=newline if text else None,
        ) as handle:
            yield handle
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: str | bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8 with ``\\n`` line ends)
    all at once; see ``atomic_writer``."""
    if isinstance(data, bytes):
        with atomic_writer(path, binary=True, sync=sync) as binary_handle:
            binary_handle.write(data)
    else:
        with atomic_writer(path, sync=sync) as text_handle:
            text_handle.write(data)
