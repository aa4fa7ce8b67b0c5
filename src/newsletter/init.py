"""``newsletter init``: lay out a new workspace from the packaged skeleton.

The skeleton (``newsletter/skeleton/``) holds a commented newsletter.toml, templates/
with a README, subscribers/ with an empty import file, seeds/ with one example article
and the workspace's .gitignore (stored as ``gitignore``: dotfiles are easy to lose in
packaging). ``issues/`` gets a .gitkeep so git keeps the folder before the first issue.
The database is left alone: the first import or ``subscribers add`` creates it.

In: the folder to set up (created if missing). Out: ``InitReport`` listing the files
written and those left as they were. A folder that already has a newsletter.toml is
refused with a ``ConfigError``; no existing file is ever overwritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from newsletter.config import CONFIG_FILE
from newsletter.errors import ConfigError

log = logging.getLogger(__name__)

# packaged name -> name in the workspace
_RENAMED = {"gitignore": ".gitignore"}


@dataclass
class InitReport:
    """What ``init_workspace`` did: the ``root`` and the files ``created`` or ``kept``."""

    root: Path
    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def init_workspace(folder: Path) -> InitReport:
    """Write the skeleton into ``folder`` (see module docstring) -> InitReport."""
    root = folder.resolve()
    if (root / CONFIG_FILE).exists():
        raise ConfigError(
            f"{root / CONFIG_FILE} already exists: this folder is a workspace",
            hint="edit that file, or run newsletter init with another folder",
        )
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file", hint="give a folder to set up")
    report = InitReport(root=root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for source, relative in _skeleton_files(resources.files("newsletter") / "skeleton"):
            _write(root / relative, source.read_bytes(), report)
        _write(root / "issues" / ".gitkeep", b"", report)
    except OSError as exc:
        raise ConfigError(
            f"cannot set up {root}: {exc.strerror or exc}",
            hint="check that you may write in that folder",
        ) from None
    log.info("initialised a workspace in %s (%d files)", root, len(report.created))
    return report


def _skeleton_files(folder: Traversable, prefix: Path = Path()) -> list[tuple[Traversable, Path]]:
    """Every file under the packaged ``folder``, with its path in the new workspace."""
    files: list[tuple[Traversable, Path]] = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name == "__pycache__":
            continue
        target = prefix / _RENAMED.get(entry.name, entry.name)
        if entry.is_dir():
            files.extend(_skeleton_files(entry, target))
        else:
            files.append((entry, target))
    return files


def _write(path: Path, data: bytes, report: InitReport) -> None:
    """Create ``path`` with ``data`` unless something is there already (then keep it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("xb") as handle:
            handle.write(data)
    except FileExistsError:
        report.kept.append(path)
        return
    report.created.append(path)
