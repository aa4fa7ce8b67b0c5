"""Watching the files a preview render reads: newsletter.toml, issue.json, templates/.

``Watcher(state, dirty)`` sets the ``dirty`` event whenever one of them changes (after a
short debounce); the preview server re-renders when it is set.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from watchfiles import Change, DefaultFilter, awatch

from newsletter.config import CONFIG_FILE
from newsletter.preview.state import ISSUE_FILE, PreviewState

log = logging.getLogger(__name__)

# How long the watcher waits for a burst of writes to end (editors often write twice).
WATCH_STEP_MS = 30
WATCH_DEBOUNCE_MS = 400


class Watcher:
    """Watches the files a render reads and sets ``dirty`` when one of them changes.

    The workspace folder and the issue folder are watched flat (their subfolders
    hold databases and virtualenvs); templates/ is watched with its subfolders,
    from the moment it exists.
    """

    def __init__(self, state: PreviewState, dirty: asyncio.Event) -> None:
        root = state.workspace.root.resolve()
        self.config_file = root / CONFIG_FILE
        self.issue_file = state.issue_dir.resolve() / ISSUE_FILE
        self.templates_dir = state.workspace.templates_dir.resolve()
        self.dirty = dirty
        self.stop_event = asyncio.Event()
        self._default_filter = DefaultFilter()
        self._flat: asyncio.Task[None] | None = None
        self._templates: asyncio.Task[None] | None = None

    def relevant(self, change: Change, path: str) -> bool:
        """True for newsletter.toml, issue.json and any template file (not editor droppings)."""
        changed = Path(path)
        if changed in (self.config_file, self.issue_file):
            return True
        return changed.is_relative_to(self.templates_dir) and self._default_filter(change, path)

    async def _watch(self, paths: list[Path], *, recursive: bool) -> None:
        async for changes in awatch(
            *paths,
            watch_filter=self.relevant,
            step=WATCH_STEP_MS,
            debounce=WATCH_DEBOUNCE_MS,
            stop_event=self.stop_event,
            recursive=recursive,
        ):
            log.info("changed: %s", ", ".join(sorted(path for _, path in changes)))
            if await self._watch_templates():
                log.info("watching %s", self.templates_dir)
            self.dirty.set()

    async def _watch_templates(self) -> bool:
        """Start watching templates/ if it exists and is not watched yet; True if started."""
        if self._templates is not None and not self._templates.done():
            return False
        if not self.templates_dir.is_dir():
            return False
        self._templates = asyncio.create_task(self._watch([self.templates_dir], recursive=True))
        # awatch sets up its inotify watches in the first step of its task, before its
        # first real await; one turn of the loop runs that step, so no save is missed.
        await asyncio.sleep(0)
        return True

    async def start(self) -> None:
        """Start watching; returns once the watches are in place."""
        folders = list(dict.fromkeys([self.config_file.parent, self.issue_file.parent]))
        self._flat = asyncio.create_task(self._watch(folders, recursive=False))
        await asyncio.sleep(0)  # as in _watch_templates
        await self._watch_templates()

    async def stop(self) -> None:
        """Stop every watch and wait for the watcher tasks to end."""
        self.stop_event.set()
        tasks = [task for task in (self._flat, self._templates) if task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
