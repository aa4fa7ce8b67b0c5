"""Exporting subscribers: ``write_export`` / ``export_file`` -> rows written.

Export writes ``EXPORT_COLUMNS``; importing that file again changes nothing. Cells a
spreadsheet would run as a formula get a leading ``'`` (``formats.spreadsheet_cell``).
No subscriber data is logged: log lines carry file names and counts only.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import IO

from newsletter.audience.formats import spreadsheet_cell
from newsletter.files import atomic_writer
from newsletter.store import Store, SubscriberSummary
from newsletter.store.schema import ACTIVE, PENDING, UNSUBSCRIBED

log = logging.getLogger(__name__)

EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "lists",
    "unsubscribed_lists",
    "pending_lists",
    "attributes",
    "created_at",
    "updated_at",
)


def export_row(sub: SubscriberSummary) -> list[str]:
    """One subscriber -> the EXPORT_COLUMNS values."""
    by_status: dict[str, list[str]] = {ACTIVE: [], UNSUBSCRIBED: [], PENDING: []}
    for list_name, list_status in sub.lists.items():
        by_status[list_status].append(list_name)
    attributes = (
        json.dumps(sub.attributes, ensure_ascii=False, sort_keys=True) if sub.attributes else ""
    )
    cells = [
        sub.email,
        sub.name,
        sub.status,
        ";".join(by_status[ACTIVE]),
        ";".join(by_status[UNSUBSCRIBED]),
        ";".join(by_status[PENDING]),
        attributes,
        sub.created_at.isoformat(),
        sub.updated_at.isoformat(),
    ]
    return [spreadsheet_cell(cell) for cell in cells]


def write_export(
    store: Store, out: IO[str], *, list_name: str | None = None, status: str | None = None
) -> int:
    """Stream subscribers (filtered like ``Store.count``) as CSV to ``out`` -> rows written."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for sub in store.iter_summaries(list_name=list_name, status=status):
        writer.writerow(export_row(sub))
        written += 1
    return written


def export_file(
    store: Store, path: Path, *, list_name: str | None = None, status: str | None = None
) -> int:
    """Export to ``path`` atomically (``files.atomic_writer``) -> rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, newline="") as handle:
        written = write_export(store, handle, list_name=list_name, status=status)
    log.info("exported %d subscribers to %s", written, path.name)
    return written
