"""Preview: a local page that shows an issue as it will be sent and reloads on every save.

``run_preview(workspace, issue_dir, ...)`` is the one call behind ``newsletter preview``:
it checks the folder, picks the sample recipient, serves the page on 127.0.0.1, opens
the browser and blocks until Ctrl-C. The parts:

- ``state``    the render state machine (last good render kept across errors)
- ``audience`` the sample recipient and the recipient count of the default list
- ``checks``   HTML size vs Gmail's clipping, images without alt, links (and their status)
- ``page``     the JSON and frame documents the page shows
- ``server``   starlette app, Server-Sent Events, uvicorn
- ``watch``    file watching: issue.json, templates/, newsletter.toml
"""

from __future__ import annotations

import logging
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import RenderError
from newsletter.preview.audience import Audience, SampleRecipient, open_audience
from newsletter.preview.server import PreviewServer
from newsletter.preview.state import ISSUE_FILE, PreviewState, Rendition, Snapshot
from newsletter.workspace import Workspace

__all__ = [
    "Audience",
    "PreviewResult",
    "PreviewServer",
    "PreviewState",
    "Rendition",
    "SampleRecipient",
    "Snapshot",
    "open_preview",
    "run_preview",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviewResult:
    """How a preview session ended: where it ran and how many renders it made."""

    url: str
    renders: int


def open_preview(
    workspace: Workspace, issue_dir: Path, *, as_address: str | None = None
) -> PreviewState:
    """Check ``issue_dir`` and pick the sample recipient -> a PreviewState (nothing rendered yet).

    Raises RenderError when ``issue_dir`` is not a folder holding issue.json, and
    StoreError when ``as_address`` is not a subscriber.
    """
    if not issue_dir.is_dir():
        raise RenderError(
            f"{issue_dir}: no such issue folder",
            hint="pass a folder written by `newsletter compose`, like issues/2026-11-28-brief",
        )
    if not (issue_dir / ISSUE_FILE).is_file():
        raise RenderError(
            f"{issue_dir}: no {ISSUE_FILE} in this folder",
            hint="pass a folder written by `newsletter compose`",
        )
    return PreviewState(workspace, issue_dir, open_audience(workspace, as_address))


def _open_browser(url: str) -> None:
    if not webbrowser.open(url):
        log.warning("no web browser found: open %s yourself", url)


def run_preview(
    workspace: Workspace,
    issue_dir: Path,
    *,
    port: int = 0,
    open_browser: bool = True,
    as_address: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> PreviewResult:
    """Serve a live preview of ``issue_dir`` on 127.0.0.1:``port`` until Ctrl-C.

    ``port`` 0 picks a free port. Once the first render is done, ``on_ready(url)`` is
    called (the CLI prints the URL) and, with ``open_browser``, the default browser
    opens it. Returns a PreviewResult after a clean stop; raises NewsletterError for a
    missing folder, an unknown ``as_address`` or a port in use.
    """
    state = open_preview(workspace, issue_dir, as_address=as_address)

    def ready(url: str) -> None:
        if on_ready is not None:
            on_ready(url)
        if open_browser:
            # a console browser would hold this thread: the server must keep serving
            threading.Thread(target=_open_browser, args=(url,), daemon=True).start()

    try:
        server = PreviewServer(state, port=port, on_ready=ready)
        server.run()
    finally:
        state.close()
    return PreviewResult(url=server.url, renders=server.app.renders)
