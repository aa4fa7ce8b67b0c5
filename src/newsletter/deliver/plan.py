"""Before a send: which list, whether it has anyone, and what a send would do now.

``plan_send`` answers the confirmation prompt (new, resume, waiting or finished, and
how many recipients) without changing anything. The list checks here are shared by
the real send, the test send and the dry run, so all three refuse alike.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from newsletter.compose.folder import issue_key
from newsletter.compose.issue_file import read_issue
from newsletter.errors import NewsletterError, StoreError
from newsletter.smtp.settings import smtp_settings
from newsletter.store import Store, open_store_for, utcnow
from newsletter.store.campaigns import FINISHED, WAITING, find_campaign
from newsletter.store.deliveries import (
    DEFERRED,
    FAILED,
    SENT,
    UNKNOWN,
    counts,
    next_attempt,
    pending_now,
)
from newsletter.store.lease import RUNNING
from newsletter.store.ledger_queue import count_sendable
from newsletter.workspace import Workspace

from .content import check_placeholders, check_sender
from .reports import NEW, RESUME, SendPlan
from .transport import smtp_target


def resolve_list_name(ws: Workspace, list_name: str | None) -> str:
    """The list to send to: ``list_name``, or ``send.list`` when none was given.

    An empty name is an error, not the default: ``--list "$LIST"`` with LIST unset
    must not quietly send to another list.
    """
    if list_name is None:
        return ws.config.send.list.strip()
    if not list_name.strip():
        raise NewsletterError(
            "the list name is empty",
            hint=f"give --list a name, or leave it out to send to {ws.config.send.list!r}",
        )
    return list_name.strip()


def list_id_of(store: Store, list_name: str) -> int:
    """The id of the list ``list_name`` -> int; StoreError naming the lists there are."""
    list_id = store.list_id(list_name)
    if list_id is None:
        known = ", ".join(repr(name) for name in store.list_names()) or "none yet"
        raise StoreError(
            f"no list named {list_name!r} (lists: {known})",
            hint="pass --list with one of them, or import subscribers into a new list "
            "with newsletter subscribers import FILE --list NAME",
        )
    return list_id


def refuse_empty_list(store: Store, list_id: int, list_name: str) -> None:
    """Raise NewsletterError when ``list_name`` has nobody a send would reach (a send
    and a dry run refuse alike)."""
    with store.read() as conn:
        if count_sendable(conn, list_id):
            return
    raise NewsletterError(
        f"list {list_name!r} has nobody to send to (no active, confirmed member)",
        hint="import subscribers first: newsletter subscribers import FILE",
    )


def nothing_to_retry(issue_dir: Path, list_name: str) -> NewsletterError:
    """The error for ``--retry-failed`` / ``--retry-unknown`` of an issue never sent to
    ``list_name``."""
    return NewsletterError(
        f"{issue_dir} was never sent to list {list_name!r}: there is nothing to retry",
        hint="leave out --retry-failed / --retry-unknown to send it",
    )


def plan_send(
    ws: Workspace,
    issue_dir: Path,
    list_name: str | None = None,
    *,
    retry_failed: bool = False,
    retry_unknown: bool = False,
    smtp_url: str | None = None,
    now: datetime | None = None,
) -> SendPlan:
    """What ``send_issue`` would do now -> SendPlan (for the confirmation prompt).

    Reads the issue (or the started campaign), counts recipients; changes nothing.
    ``now`` (default: the current time) decides which deferred rows are due.
    Raises RenderError for an unreadable issue, StoreError for an unknown list,
    ConfigError for a bad SMTP URL or a commercial sender without postal address.
    """
    list_name = resolve_list_name(ws, list_name)
    check_sender(ws)
    smtp = smtp_settings(ws, smtp_url)
    check_placeholders(ws, smtp)
    target = smtp_target(ws, smtp)
    key = issue_key(ws, issue_dir)
    with open_store_for(ws) as store:
        list_id = list_id_of(store, list_name)
        with store.read() as conn:
            campaign = find_campaign(conn, key, list_id)
            if campaign is None:
                if retry_failed or retry_unknown:
                    raise nothing_to_retry(issue_dir, list_name)
                subject = read_issue(issue_dir).subject
                return SendPlan(
                    issue_dir, list_name, subject, NEW, count_sendable(conn, list_id), target
                )
            now = now or utcnow()
            found = counts(conn, campaign.id)
            pending = pending_now(conn, campaign.id, now)
            if campaign.enqueued_at is None:
                pending += max(count_sendable(conn, list_id) - sum(found.values()), 0)
            pending += found[FAILED] * retry_failed + found[UNKNOWN] * retry_unknown
            due_later = next_attempt(conn, campaign.id)
    state = RESUME if pending else WAITING if found[DEFERRED] else FINISHED
    return SendPlan(
        issue_dir,
        list_name,
        campaign.subject,
        state,
        pending,
        target,
        sent=found[SENT],
        failed=found[FAILED],
        deferred=found[DEFERRED],
        next_attempt_at=due_later,
        running=campaign.state == RUNNING,
    )
