"""One ``newsletter bounces`` run: ``process_paths(workspace, paths) -> BounceRunReport``.

Each message is read (``sources``), classified and applied (``process``); one that is
not a report may be someone asking to leave through the List-Unsubscribe ``mailto:``, so
it goes to ``unsubscribe.process_request``. ``report`` counts the outcomes for the CLI; a
message that fails in an unexpected way is listed there and the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import InterfaceError, OperationalError

from newsletter.audience.bounces.classify import Kind
from newsletter.audience.bounces.process import BounceSettings, process_message
from newsletter.audience.bounces.report import BounceRunReport
from newsletter.audience.bounces.sources import read_messages
from newsletter.audience.bounces.unsubscribe import RequestSettings, process_request
from newsletter.errors import BounceSourceError
from newsletter.store import Store, open_store_for
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

# the database itself is unusable (locked past the busy timeout, connection lost, schema
# missing): every further message would fail the same way, so the run stops there
_STORE_FAILURES = (OperationalError, InterfaceError)


def process_paths(
    workspace: Workspace,
    paths: Sequence[Path],
    *,
    store: Store | None = None,
) -> BounceRunReport:
    """Process every message in ``paths`` (.eml files, Maildir folders, mbox files).

    Every path is checked first: a missing one raises BounceSourceError before any
    message is processed. A file or mailbox entry that cannot be read is listed in
    ``unreadable``, a message that fails in an unexpected way in ``unclassified``
    (logged with its traceback at INFO), and the run goes on. Each message commits
    on its own, so an interrupted run keeps what it did and a rerun skips what it
    already recorded.
    """
    missing = [path for path in paths if not path.exists()]
    if missing:
        raise BounceSourceError(
            f"{missing[0]}: no such file or folder",
            hint="give .eml files, Maildir folders (with new/ or cur/) or mbox files",
        )
    settings = BounceSettings.from_workspace(workspace)
    requests = RequestSettings.from_workspace(workspace)
    report = BounceRunReport()
    owned = store is None
    active = open_store_for(workspace) if store is None else store
    try:
        for origin, data in read_messages(paths, report.unreadable):
            _process_one(active, data, settings, requests, origin=origin, report=report)
    finally:
        if owned:
            active.close()
    return report


def _process_one(
    store: Store,
    data: bytes,
    settings: BounceSettings,
    requests: RequestSettings,
    *,
    origin: str,
    report: BounceRunReport,
) -> None:
    """Classify and apply one message (or the unsubscribe request it is) and count it."""
    try:
        outcome = process_message(store, data, settings, origin=origin)
        found = outcome.classification
        # not a report: maybe someone asking to leave through the mailto: link
        request = (
            process_request(store, data, requests, key=found.report_key, origin=origin)
            if found.kind is Kind.NOT_A_REPORT
            else None
        )
    except _STORE_FAILURES:
        raise
    except Exception as exc:
        # a message we cannot make sense of must not stop this run, nor every
        # rerun (it stays in the mailbox): list it, say why, go on
        reason = _one_line(exc)
        log.info("%s: could not classify: %s", origin, reason, exc_info=True)
        report.count_unclassified(origin, reason)
        return
    if request is not None:
        report.count_request(request, origin)
    else:
        report.count(outcome)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line, at most 200 characters."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= 200 else line[:199] + "…"
