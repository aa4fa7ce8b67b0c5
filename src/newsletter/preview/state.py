"""The preview's render state machine, with no server in sight.

``PreviewState(workspace, issue_dir, recipient)`` renders the issue folder the way it
will be sent, fills the recipient slots from the sample recipient, and measures the
result. ``refresh()`` renders again (re-reading newsletter.toml, issue.json and the
templates) and returns the new ``Snapshot``:

- a good render replaces ``snapshot.good`` and clears ``snapshot.error``;
- a failed render (broken template, invalid JSON, bad config) sets ``snapshot.error``
  to the one-line message naming the file and line, and KEEPS the last good render,
  so the page goes on showing something while the user fixes the file;
- the next good render clears the error by itself.

``version`` grows by one on every refresh, good or bad; ``good.version`` is the
version that produced the render on show. Nothing is written to the issue folder.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from newsletter.compose.issue_file import read_issue
from newsletter.config import CONFIG_FILE, load_config
from newsletter.errors import NewsletterError, RenderError
from newsletter.mail.slots import slot_grammar
from newsletter.preview.audience import Audience, RecipientCount, SampleRecipient
from newsletter.preview.checks import HtmlFigures, measure_html
from newsletter.render.pipeline import render_issue
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

ISSUE_FILE = "issue.json"

# The preview must never hand out a working unsubscribe link for a real person.
PREVIEW_UNSUBSCRIBE_URL = "#unsubscribe-preview"


@dataclass(frozen=True)
class Rendition:
    """One good render, slots filled for the sample recipient, ready to show.

    ``version`` is the refresh that produced it; ``recipients`` the active subscribers
    on the default list (config send.list).
    """

    version: int
    html: str
    text: str
    subject: str
    preheader: str
    sender_name: str
    sender_address: str
    recipient: SampleRecipient
    figures: HtmlFigures
    warnings: tuple[str, ...]
    recipients: RecipientCount
    render_ms: float
    rendered_at: float
    # the web version (issue.html, what /archive/<folder>/ will show), nothing personal
    web_html: str = ""


@dataclass(frozen=True)
class Snapshot:
    """What the page shows: the last good render and the current error, if any."""

    version: int
    good: Rendition | None
    error: str | None


def reload_workspace(workspace: Workspace) -> Workspace:
    """The same workspace with newsletter.toml read again (Config is frozen, so: a new one)."""
    return dataclasses.replace(workspace, config=load_config(workspace.root / CONFIG_FILE))


class PreviewState:
    """Renders ``issue_dir`` of ``workspace`` for ``audience``'s sample recipient.

    Thread-safe: ``refresh()`` may run in a worker thread while ``snapshot`` is read
    from the event loop (the snapshot is swapped whole, never mutated).
    """

    def __init__(self, workspace: Workspace, issue_dir: Path, audience: Audience) -> None:
        self.workspace = workspace
        self.issue_dir = issue_dir
        self.audience = audience
        self._lock = threading.Lock()
        self._snapshot = Snapshot(version=0, good=None, error=None)

    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot (version 0, nothing rendered, before the first refresh)."""
        return self._snapshot

    def close(self) -> None:
        """Release what the audience holds open (the database pool)."""
        self.audience.close()

    def refresh(self) -> Snapshot:
        """Render again from the files on disk -> the new Snapshot (never raises for bad input)."""
        with self._lock:
            version = self._snapshot.version + 1
            try:
                good = self._render(version)
            except NewsletterError as exc:
                log.warning("preview render failed: %s", exc)
                self._snapshot = Snapshot(version=version, good=self._snapshot.good, error=str(exc))
            except Exception as exc:  # a bug must not take the preview down: show it, keep serving
                log.exception("preview render crashed")
                message = f"unexpected {type(exc).__name__} while rendering: {exc}"
                self._snapshot = Snapshot(version=version, good=self._snapshot.good, error=message)
            else:
                self._snapshot = Snapshot(version=version, good=good, error=None)
            return self._snapshot

    def _render(self, version: int) -> Rendition:
        started = time.perf_counter()
        workspace = reload_workspace(self.workspace)
        self.workspace = workspace
        if not (self.issue_dir / ISSUE_FILE).is_file():
            raise RenderError(
                f"{self.issue_dir / ISSUE_FILE}: not found",
                hint="restore the file or compose the issue again",
            )
        issue = read_issue(self.issue_dir)
        rendered = render_issue(workspace, issue, folder_name=self.issue_dir.resolve().name)
        recipient = self.audience.sample
        slots = recipient.slot_values(unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL)
        grammar = slot_grammar(workspace)
        html = grammar.fill(rendered.html, slots, html=True)
        return Rendition(
            version=version,
            html=html,
            text=grammar.fill(rendered.text, slots, html=False),
            # the editor's fields: their %%name%% slots are filled as the sender does
            subject=grammar.fill(grammar.mark(rendered.subject), slots, html=False),
            preheader=grammar.fill(grammar.mark(rendered.preheader), slots, html=False),
            sender_name=workspace.config.sender.name,
            sender_address=workspace.config.sender.address,
            recipient=recipient,
            figures=measure_html(html, warn_kb=workspace.config.compose.max_html_kb),
            warnings=tuple(rendered.warnings),
            recipients=self.audience.count_active(workspace.config.send.list),
            render_ms=(time.perf_counter() - started) * 1000,
            rendered_at=time.time(),
            web_html=rendered.reader_html,
        )
