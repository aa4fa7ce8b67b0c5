"""The packaged theme and the workspace's overrides of it.

A workspace customises the look by placing a file of the same name under its
``templates/`` folder; these helpers list the packaged files and copy one over
as a starting point, so nobody has to dig through site-packages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from newsletter.errors import NewsletterError
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThemeFile:
    """One file of the packaged theme: its name and whether the workspace overrides it."""

    name: str
    overridden: bool


def _packaged_root() -> Traversable:
    return resources.files("newsletter") / "templates"


def _walk(folder: Traversable, prefix: str = "") -> list[str]:
    names: list[str] = []
    for entry in folder.iterdir():
        if entry.name.startswith((".", "__")):
            continue
        if entry.is_dir():
            names.extend(_walk(entry, f"{prefix}{entry.name}/"))
        else:
            names.append(prefix + entry.name)
    return names


def theme_files(ws: Workspace) -> list[ThemeFile]:
    """Every packaged theme file (sorted by name), marked when ``templates/`` overrides it."""
    return [
        ThemeFile(name, (ws.templates_dir / name).is_file())
        for name in sorted(_walk(_packaged_root()))
    ]


def copy_theme_file(ws: Workspace, name: str, *, force: bool = False) -> Path:
    """Copy the packaged file ``name`` into the workspace's templates/ -> the new path.

    Raises NewsletterError for a name the theme does not have, or when the
    workspace already has that file and ``force`` is not set (an edited
    override is never clobbered by accident).
    """
    known = {item.name for item in theme_files(ws)}
    if name not in known:
        raise NewsletterError(
            f"the theme has no file {name!r}", hint="run `newsletter theme list` to see its files"
        )
    target = ws.templates_dir / name
    if target.exists() and not force:
        raise NewsletterError(
            f"{target} exists already", hint="edit it, or pass --force to start over from the theme"
        )
    source = _packaged_root().joinpath(*name.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(source.read_bytes())
    temporary.replace(target)
    log.info("copied theme file %s to %s", name, target)
    return target
