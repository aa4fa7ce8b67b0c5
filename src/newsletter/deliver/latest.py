"""``send --latest``: the newest issue under ``issues/`` that is not yet sent to the list.

"Newest" is the issue's own date (``date`` in issue.json, which compose sets and the
folder name starts with). Of several unsent issues of that date, the one composed last
wins: when compose first recorded its articles (``featured_articles.recorded_at``,
which neither a re-render nor an edit changes); when that cannot tell them apart (an
issue composed elsewhere, or with no article), they are named and none is picked. A
file's modification time is not used: touching or editing an old issue does not make it
new.
An issue whose campaign to the list is finished is passed over, so after a send
``--latest`` never offers the issue just sent again.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from newsletter.compose.folder import issue_key
from newsletter.compose.issue_file import ISSUE_JSON
from newsletter.errors import NewsletterError
from newsletter.store import open_store_for
from newsletter.store.campaigns import FINISHED, campaigns
from newsletter.store.featured import featured_articles
from newsletter.store.subscribers import Store
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
    ``send.list``) -> its path; NewsletterError when there is none, or when several of
    the newest date cannot be told apart."""
    folders = issue_folders(ws)
    if not folders:
        raise NewsletterError(
            f"no issue folder with an {ISSUE_JSON} in {ws.issues_dir}",
            hint="compose one first: newsletter compose SOURCES",
        )
    list_name = resolve_list_name(ws, list_name)
    with open_store_for(ws) as store:
        finished = _finished_issues(store, list_name)
        unsent = [folder for folder in folders if issue_key(ws, folder) not in finished]
        if not unsent:
            raise NewsletterError(
                f"every issue in {ws.issues_dir} was already sent to list {list_name!r} "
                f"(the newest: {folders[0].name})",
                hint="compose a new issue: newsletter compose SOURCES",
            )
        newest = issue_date(unsent[0])
        candidates = [folder for folder in unsent if issue_date(folder) == newest]
        if len(candidates) == 1:
            return candidates[0]
        return _composed_last(ws, store, candidates)


def _finished_issues(store: Store, list_name: str) -> set[str]:
    """The issue keys whose campaign to ``list_name`` is finished."""
    list_id = store.list_id(list_name)
    if list_id is None:
        return set()
    with store.read() as conn:
        return set(
            conn.scalars(
                select(campaigns.c.issue_path).where(
                    campaigns.c.list_id == list_id, campaigns.c.state == FINISHED
                )
            )
        )


def _composed_last(ws: Workspace, store: Store, candidates: list[Path]) -> Path:
    """Of unsent issues of one date, the one compose recorded last -> its folder;
    NewsletterError naming them all when that is not known for each, or is a tie."""
    keys = {issue_key(ws, folder): folder for folder in candidates}
    first = func.min(featured_articles.c.recorded_at)
    with store.read() as conn:
        rows = conn.execute(
            select(featured_articles.c.issue_key, first)
            .where(featured_articles.c.issue_key.in_(list(keys)))
            .group_by(featured_articles.c.issue_key)
        )
        recorded = {key: at for key, at in rows}
    times = sorted((recorded[key] for key in keys if key in recorded), reverse=True)
    if len(recorded) == len(keys) and times[0] != times[1]:
        return next(keys[key] for key in keys if recorded[key] == times[0])
    names = ", ".join(sorted(folder.name for folder in candidates))
    raise NewsletterError(
        f"several unsent issues of {issue_date(candidates[0])} and which was composed last "
        f"is not known: {names}",
        hint="name the one to send: newsletter send ISSUE_DIR",
    )
