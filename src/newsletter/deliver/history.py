"""What each sent issue came to: ``issue_history(ws, list_name=None) -> [HistoryLine]``.

One line per campaign (one issue folder sent to one list), however many processes sent
it or how often it was resumed: the ``campaigns`` row is unique per folder and list.
Test sends and dry runs record no campaign, so they never appear. A campaign that never
started (created, then nothing claimed) is not a sent issue either.

Each figure is one grouped query over every campaign shown, never one per campaign:

- delivery rows per status (``store.deliveries``): recipients, sent, failed, deferred,
  unknown, skipped, and pending (queued or in flight: a send still running or stopped);
- bounce and complaint reports tied to the campaign (``bounce_reports.campaign_id``:
  the signed token of the returned message, else its Message-ID's delivery row),
  counted per subscriber, so repeated delay warnings about one person count once;
- unsubscribes through that issue's links: the consent-trail records of the one-click
  POST, the page's button and the mailto request carry the token's campaign id.

Erasing a subscriber deletes their reports and consent records, so these counts can
go down afterwards; the delivery rows stay (without the address).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Select, func, select

from newsletter.errors import StoreError
from newsletter.mail.slots import slot_grammar
from newsletter.store import open_store_for
from newsletter.store.bounce_reports import COMPLAINT, HARD, SOFT, bounce_reports
from newsletter.store.campaigns import campaigns
from newsletter.store.deliveries import (
    DEFERRED,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    SKIPPED,
    UNKNOWN,
    deliveries,
)
from newsletter.store.ops import find_list_id
from newsletter.store.schema import consents, lists
from newsletter.textsafe import printable
from newsletter.workspace import Workspace

UNSUBSCRIBE_ACTION = "unsubscribe"


@dataclass(frozen=True)
class HistoryLine:
    """One sent issue (campaign) and what it came to.

    ``started_at`` / ``finished_at``: aware UTC times of the first run and of the end
    (None while rows are left); ``state``: the campaign's (running, stopped, waiting,
    finished); ``subject``: the editor's, slots written as ``%%name%%``; the counts are
    delivery rows per status (``pending``: queued or in flight), then subscribers with
    a bounce report, a complaint, or an unsubscribe through this issue's links.
    """

    campaign_id: int
    issue: str
    list_name: str
    subject: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    recipients: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    unknown: int = 0
    skipped: int = 0
    pending: int = 0
    bounces: int = 0
    complaints: int = 0
    unsubscribes: int = 0

    def as_json(self) -> dict[str, Any]:
        """The line as JSON-ready values under stable keys (times in ISO 8601, UTC)."""
        return {
            "campaign_id": self.campaign_id,
            "issue": self.issue,
            "list": self.list_name,
            "subject": self.subject,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "recipients": self.recipients,
            "sent": self.sent,
            "failed": self.failed,
            "deferred": self.deferred,
            "unknown": self.unknown,
            "skipped": self.skipped,
            "pending": self.pending,
            "bounces": self.bounces,
            "complaints": self.complaints,
            "unsubscribes": self.unsubscribes,
        }


def issue_history(ws: Workspace, list_name: str | None = None) -> list[HistoryLine]:
    """Every sent issue of ``ws`` (to ``list_name`` only, when given), newest first.

    Raises StoreError for a list that does not exist.
    """
    plain = slot_grammar(ws).plain
    with open_store_for(ws) as store, store.read() as conn:
        shown = select(campaigns.c.id).where(campaigns.c.started_at.is_not(None))
        if list_name is not None:
            shown = shown.where(campaigns.c.list_id == _list_id(conn, list_name))
        rows = conn.execute(
            select(campaigns, lists.c.name.label("list_name"))
            .join(lists, lists.c.id == campaigns.c.list_id)
            .where(campaigns.c.id.in_(shown))
            .order_by(campaigns.c.started_at.desc(), campaigns.c.id.desc())
        ).all()
        statuses = _delivery_counts(conn, shown)
        reports = _report_counts(conn, shown)
        left = _unsubscribe_counts(conn, shown)
    return [_line(row, plain(row.subject), statuses.get(row.id, {}), reports, left) for row in rows]


def _list_id(conn: Connection, list_name: str) -> int:
    list_id = find_list_id(conn, list_name)
    if list_id is None:
        names = ", ".join(conn.scalars(select(lists.c.name).order_by(lists.c.name))) or "none"
        raise StoreError(f"no list named {list_name!r}", hint=f"lists here: {names}")
    return list_id


def _delivery_counts(conn: Connection, shown: Select[Any]) -> dict[int, dict[str, int]]:
    """campaign id -> {status: rows} for every campaign in ``shown``, in one query."""
    found: dict[int, dict[str, int]] = {}
    rows = conn.execute(
        select(deliveries.c.campaign_id, deliveries.c.status, func.count())
        .where(deliveries.c.campaign_id.in_(shown))
        .group_by(deliveries.c.campaign_id, deliveries.c.status)
    )
    for campaign_id, status, count in rows:
        found.setdefault(int(campaign_id), {})[str(status)] = int(count)
    return found


def _report_counts(conn: Connection, shown: Select[Any]) -> dict[tuple[int, str], int]:
    """(campaign id, kind) -> subscribers with a report of that kind, in one query."""
    rows = conn.execute(
        select(
            bounce_reports.c.campaign_id,
            bounce_reports.c.kind,
            func.count(bounce_reports.c.subscriber_id.distinct()),
        )
        .where(bounce_reports.c.campaign_id.in_(shown))
        .group_by(bounce_reports.c.campaign_id, bounce_reports.c.kind)
    )
    return {(int(campaign_id), str(kind)): int(count) for campaign_id, kind, count in rows}


def _unsubscribe_counts(conn: Connection, shown: Select[Any]) -> dict[int, int]:
    """campaign id -> subscribers who left through its links, in one query."""
    campaign_id = consents.c.detail["campaign_id"].as_integer()
    rows = conn.execute(
        select(campaign_id, func.count(consents.c.subscriber_id.distinct()))
        .where(consents.c.action == UNSUBSCRIBE_ACTION, campaign_id.in_(shown))
        .group_by(campaign_id)
    )
    return {int(found): int(count) for found, count in rows}


def _line(
    row: Any,
    subject: str,
    statuses: dict[str, int],
    reports: dict[tuple[int, str], int],
    left: dict[int, int],
) -> HistoryLine:
    return HistoryLine(
        campaign_id=row.id,
        issue=row.issue_path,
        list_name=row.list_name,
        subject=subject,
        state=row.state,
        started_at=row.started_at,
        finished_at=row.finished_at,
        recipients=sum(statuses.values()),
        sent=statuses.get(SENT, 0),
        failed=statuses.get(FAILED, 0),
        deferred=statuses.get(DEFERRED, 0),
        unknown=statuses.get(UNKNOWN, 0),
        skipped=statuses.get(SKIPPED, 0),
        pending=statuses.get(QUEUED, 0) + statuses.get(SENDING, 0),
        bounces=reports.get((row.id, HARD), 0) + reports.get((row.id, SOFT), 0),
        complaints=reports.get((row.id, COMPLAINT), 0),
        unsubscribes=left.get(row.id, 0),
    )


# --- the table for people -----------------------------------------------------------------

TABLE_WIDTH = 100
_COUNTS = (
    ("rcpt", "recipients"),
    ("sent", "sent"),
    ("failed", "failed"),
    ("defer", "deferred"),
    ("unkn", "unknown"),
    ("skip", "skipped"),
    ("bounce", "bounces"),
    ("compl", "complaints"),
    ("unsub", "unsubscribes"),
)
_MIN_SUBJECT = 12
_MAX_LIST = 12  # list names may be long; the subject matters more


def history_table(lines: Iterable[HistoryLine], timezone: str) -> list[str]:
    """``lines`` as a table of at most 100 columns: the local date (``timezone``, IANA),
    list, subject (cut with "…", the state kept after it when not finished), then the
    counts. Text from the store goes through ``textsafe.printable``.
    """
    zone = ZoneInfo(timezone)
    shown = [(_cells(line, zone), _state(line)) for line in lines]
    header = ["date", "list", "subject", *(label for label, _ in _COUNTS)]
    full = [[*cells[:2], cells[2] + state, *cells[3:]] for cells, state in shown]
    widths = [max(len(cells[i]) for cells in [header, *full]) for i in range(len(header))]
    widths[1] = min(widths[1], _MAX_LIST)
    fixed = sum(widths) - widths[2] + len(widths) - 1
    widths[2] = max(_MIN_SUBJECT, min(widths[2], TABLE_WIDTH - fixed))
    table = [_join(header, widths)]
    for cells, state in shown:
        text = [_fit(cell, width) for cell, width in zip(cells, widths, strict=True)]
        text[2] = _fit(cells[2], widths[2] - len(state)) + state
        table.append(_join(text, widths))
    return table


def _state(line: HistoryLine) -> str:
    """`` [waiting]`` and the like after the subject of a send not finished, else ""."""
    return "" if line.state == "finished" else f" [{line.state}]"


def _cells(line: HistoryLine, zone: ZoneInfo) -> list[str]:
    """The cells of ``line``: local date, list, subject (without the state), counts."""
    return [
        line.started_at.astimezone(zone).date().isoformat(),
        printable(line.list_name),
        printable(line.subject),
        *(str(getattr(line, name)) for _, name in _COUNTS),
    ]


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one "…" when cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _join(cells: list[str], widths: list[int]) -> str:
    out = []
    for index, (cell, width) in enumerate(zip(cells, widths, strict=True)):
        out.append(cell.ljust(width) if index < 3 else cell.rjust(width))
    return " ".join(out).rstrip()
