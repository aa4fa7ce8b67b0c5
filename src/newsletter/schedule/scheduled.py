"""Recording, listing and cancelling scheduled sends (``send --at``, ``schedule list|cancel``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import ScheduleError
from newsletter.schedule.when import parse_when
from newsletter.store import open_store_for, utcnow
from newsletter.store.schedules import (
    OPEN_STATES,
    ScheduledSend,
    add_schedule,
    cancel_schedule,
    list_schedules,
)
from newsletter.workspace import Workspace

__all__ = ["cancel_scheduled", "describe", "issue_folder", "list_scheduled", "schedule_send"]

# A time this little in the past still counts as "now" (the user typed the current minute).
PAST_TOLERANCE = timedelta(minutes=1)


def issue_folder(ws: Workspace, scheduled: ScheduledSend) -> Path:
    """Where the issue of ``scheduled`` lives (stored paths are workspace-relative)."""
    path = Path(scheduled.issue_dir)
    return path if path.is_absolute() else ws.root / path


def _check_issue(folder: Path) -> None:
    """Raise ScheduleError (or what reading it raises) unless ``folder`` holds an issue."""
    # the issue model is only needed here: importing it at the top would load render
    from newsletter.compose.issue_file import read_issue

    if not folder.is_dir():
        raise ScheduleError(
            f"{folder}: no such issue folder", hint="compose the issue first, then schedule it"
        )
    read_issue(folder)


def schedule_send(
    ws: Workspace, issue_dir: Path | str, at: str, list_name: str | None = None
) -> ScheduledSend:
    """Record that ``issue_dir`` goes to ``list_name`` (default ``send.list``) at ``at``.

    ``at`` is read by ``parse_when`` in the workspace time zone. The issue folder must
    hold a readable issue and the list must exist; a time in the past is refused.
    Returns the stored ScheduledSend (state "scheduled"); raises ScheduleError or
    StoreError naming what to fix.
    """
    from newsletter.compose.folder import issue_key  # loads render: only when needed

    zone_name = ws.config.publication.timezone
    due = parse_when(at, zone_name)
    now = utcnow()
    if due < now - PAST_TOLERANCE:
        raise ScheduleError(
            f"{at!r} is in the past (it is now {now.astimezone(due.tzinfo):%Y-%m-%d %H:%M %Z})",
            hint="give a future time, or send now without --at",
        )
    folder = Path(issue_dir)
    _check_issue(folder if folder.is_absolute() else Path.cwd() / folder)
    from newsletter.deliver.plan import resolve_list_name

    list_name = resolve_list_name(ws, list_name)
    zone_label = getattr(due.tzinfo, "key", None) or due.strftime("%z") or zone_name
    with open_store_for(ws) as store:
        if store.list_id(list_name) is None:
            raise ScheduleError(
                f"no list named {list_name!r}",
                hint="import subscribers into it first, or pass --list with an existing list",
            )
        return add_schedule(
            store,
            issue_dir=issue_key(ws, folder),
            list_name=list_name,
            due_at=due,
            zone=zone_label,
        )


def list_scheduled(ws: Workspace, *, include_finished: bool = True) -> list[ScheduledSend]:
    """Every scheduled send, soonest first (only waiting and running ones if not
    ``include_finished``)."""
    with open_store_for(ws) as store:
        return list_schedules(store, states=None if include_finished else OPEN_STATES)


def cancel_scheduled(ws: Workspace, schedule_id: int) -> ScheduledSend:
    """Cancel waiting send ``schedule_id`` -> the cancelled row (StoreError if it cannot)."""
    with open_store_for(ws) as store:
        return cancel_schedule(store, schedule_id)


def _display_zone(scheduled: ScheduledSend, fallback: str) -> ZoneInfo:
    """The zone ``scheduled`` was given in, or ``fallback`` when it is no IANA name."""
    try:
        return ZoneInfo(scheduled.zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(fallback)


def describe(scheduled: ScheduledSend, fallback_zone: str = "UTC") -> str:
    """One line for ``schedule list``: id, state, local due time, issue, list, note."""
    due = scheduled.due_at.astimezone(_display_zone(scheduled, fallback_zone))
    line = (
        f"#{scheduled.id}\t{scheduled.state}\t{due:%Y-%m-%d %H:%M} {scheduled.zone}\t"
        f"{scheduled.issue_dir}\tlist {scheduled.list_name}"
    )
    return f"{line}\t{scheduled.note}" if scheduled.note else line
