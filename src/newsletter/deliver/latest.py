"""``send --latest``: the newest issue under ``issues/`` that is not yet sent to the list.

"Newest" is the issue's own date (``date`` in issue.json, which compose sets and the
folder name starts with), then the folder name for issues of one date. A file's
modification time is not used: touching or editing an old issue does not make it new.
An issue whose campaign to the list is finished is passed over, so after a send
``--latest`` never offers the issue just sent again.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from sqlalchemy import select

from newsletter.compose.folder import issue_key
from newsletter.compose.issue_file import ISSUE_JSON
from newsletter.errors import NewsletterError
from newsletter.store import open_store_for
from newsletter.store.campaigns import FINISHED, campaigns
from newsletter.workspace import Workspace

from .plan import resolve_list_name


def issue_date(folder: Path) -> date:
    """The ``date`` of ``folder``'s issue.json -> that date; NewsletterError naming the
    file when it cannot be read."""
    source = folder / ISSUE_JSON
    try:
        data = json.loads(source.read_bytes())
        return date.fromisoformat(str(data["date"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NewsletterError(
            f"{source}: cannot read the issue's date ({exc.__class__.__name__}: {exc})",
            hint='fix its "date" (like 2026-11-28), or move the folder out of issues/',
        ) from None


def issue_folders(ws: Workspace) -> list[Path]:
    """Every folder under ``issues/`` holding an issue.json, newest first (by the issue's
    date, then the folder name)."""
    folder = ws.issues_dir
    found = [
        candidate
        for candidate in (sorted(folder.iterdir()) if folder.is_dir() else [])
        if not candidate.name.startswith(".") and (candidate / ISSUE_JSON).is_file()
    ]
    return sorted(found, key=lambda path: (issue_date(path), path.name), reverse=True)


def latest_issue(ws: Workspace, list_name: str | None = None) -> Path:
    """The newest issue folder not yet fully sent to ``list_name`` (default
    ``send.list``) -> its path; NewsletterError when there is none."""
    folders = issue_folders(ws)
    if not folders:
        raise NewsletterError(
            f"no issue folder with an {ISSUE_JSON} in {ws.issues_dir}",
            hint="compose one first: newsletter compose SOURCES",
        )
    list_name = resolve_list_name(ws, list_name)
    with open_store_for(ws) as store:
        list_id = store.list_id(list_name)
        finished: set[str] = set()
        if list_id is not None:
            with store.read() as conn:
                finished = set(
                    conn.scalars(
                        select(campaigns.c.issue_path).where(
                            campaigns.c.list_id == list_id, campaigns.c.state == FINISHED
                        )
                    )
                )
    for folder in folders:
        if issue_key(ws, folder) not in finished:
            return folder
    raise NewsletterError(
        f"every issue in {ws.issues_dir} was already sent to list {list_name!r} "
        f"(the newest: {folders[0].name})",
        hint="compose a new issue: newsletter compose SOURCES",
    )
