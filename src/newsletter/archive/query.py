"""Which campaigns the archive shows: those sent to a list of ``[archive] lists``.

A campaign counts once one pass over its list is done (``finished``, or ``waiting`` on
deferred retries): drafts have no campaign, test sends record none, and a running one is
not public until its pass ends. An issue sent to two public lists appears once, under
its first send. Only read-only connections are used: the archive never takes the
database's write lock, so it cannot slow a send or an unsubscribe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from newsletter.store.campaigns import FINISHED, WAITING, campaigns
from newsletter.store.schema import lists
from newsletter.store.subscribers import Store
from newsletter.workspace import Workspace

PUBLIC_STATES = (FINISHED, WAITING)


@dataclass(frozen=True)
class PublicIssue:
    """One published issue: its stable ``slug`` (the issue folder's name), the campaign
    it comes from, its subject, when it went out, and the stored parts as sent."""

    slug: str
    campaign_id: int
    issue_path: str
    subject: str
    sent_at: datetime
    html: str
    text: str

    def folder(self, ws: Workspace) -> Path:
        """The issue folder (``issue_path`` is relative to the workspace when inside it)."""
        path = Path(self.issue_path)
        return path if path.is_absolute() else ws.root / path


def archive_lists(ws: Workspace) -> list[str]:
    """The lists whose issues are public: ``[archive] lists``, else the [send] list."""
    return list(ws.config.archive.lists) or [ws.config.send.list]


def generation(store: Store, ws: Workspace) -> tuple[int, int, str]:
    """A cheap key that changes whenever a campaign to a public list becomes public (or
    changes after): (count, newest id, newest update time)."""
    query = (
        select(
            func.count(campaigns.c.id), func.max(campaigns.c.id), func.max(campaigns.c.updated_at)
        )
        .join(lists, lists.c.id == campaigns.c.list_id)
        .where(campaigns.c.state.in_(PUBLIC_STATES), lists.c.name.in_(archive_lists(ws)))
    )
    with store.read() as conn:
        count, newest, updated = conn.execute(query).one()
    return int(count or 0), int(newest or 0), "" if updated is None else str(updated)


def public_issues(store: Store, ws: Workspace) -> list[PublicIssue]:
    """Every published issue, newest first (one per issue folder name)."""
    query = (
        select(campaigns)
        .join(lists, lists.c.id == campaigns.c.list_id)
        .where(campaigns.c.state.in_(PUBLIC_STATES), lists.c.name.in_(archive_lists(ws)))
        .order_by(campaigns.c.id)
    )
    found: dict[str, PublicIssue] = {}
    with store.read() as conn:
        for row in conn.execute(query):
            slug = Path(row.issue_path).name
            if not slug or slug in found:
                continue  # the same issue sent to a second public list: its first send
            found[slug] = PublicIssue(
                slug=slug,
                campaign_id=row.id,
                issue_path=row.issue_path,
                subject=row.subject,
                sent_at=row.started_at or row.created_at,
                html=row.html,
                text=row.text,
            )
    return sorted(found.values(), key=lambda item: (item.sent_at, item.campaign_id), reverse=True)
