"""Exporting subscribers: ``write_export`` / ``export_file`` -> rows written.

Export writes ``EXPORT_COLUMNS``; importing that file again changes nothing. Cells a
spreadsheet would run as a formula get a leading ``'`` (the rule of ``formats.spreadsheet_cell``).
No subscriber data is logged: log lines carry file names and counts only.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from newsletter.audience.formats import FORMULA_STARTS
from newsletter.files import atomic_writer
from newsletter.store import Store
from newsletter.store.exports import ExportValues
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


def export_row(values: ExportValues) -> list[str]:
    """One subscriber (``Store.iter_export_rows``) -> the EXPORT_COLUMNS values."""
    _, email, name, status, attributes, created_at, updated_at, on = values
    by_status: dict[str, list[str]] = {ACTIVE: [], UNSUBSCRIBED: [], PENDING: []}
    for list_name, list_status in on.items():
        by_status[list_status].append(list_name)
    cells = (
        email,
        name,
        status,
        ";".join(by_status[ACTIVE]),
        ";".join(by_status[UNSUBSCRIBED]),
        ";".join(by_status[PENDING]),
        attributes,
        created_at,
        updated_at,
    )
    # spreadsheet_cell inline: it runs nine million times in a million-row export
    return [("'" + cell) if cell[:1] in FORMULA_STARTS and cell else cell for cell in cells]


def write_export(
    store: Store, out: IO[str], *, list_name: str | None = None, status: str | None = None
) -> int:
    """Stream subscribers (filtered like ``Store.count``) as CSV to ``out`` -> rows written."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    written = 0

    def rows() -> Iterator[list[str]]:
        nonlocal written
        for values in store.iter_export_rows(list_name=list_name, status=status):
            written += 1
            yield export_row(values)

    writer.writerows(rows())
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
