"""The ``campaigns`` table: one row per send of an issue folder to a list, and its lease.

A campaign keeps a snapshot of what is sent (subject, rendered HTML and text, slots
unfilled), taken when the send first starts, so a send resumed after a crash or an edit
delivers the same message to the rest of the list. Its ``state`` is:

``running``   one or more processes are sending it (``runner``: the last to join, as
              host:pid:thread; ``heartbeat_at``: the last beat of any of them)
``stopped``   interrupted (Ctrl-C, a stop on error, a crash noticed on resume): resumable
``waiting``   one pass done, deferred recipients left for a later attempt
``finished``  nobody left to try: every row is sent, failed, skipped or unknown

Which processes send it, each with a lease of its own, is ``store.senders``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from newsletter.store.deliveries import DEFERRED, QUEUED, SKIPPED, deliveries, still_in_flight
from newsletter.store.lease import RUNNING
from newsletter.store.ops import among
from newsletter.store.schema import UtcDateTime, lists, metadata, sql_in
from newsletter.store.subscribers import Store

STOPPED = "stopped"
WAITING = "waiting"
FINISHED = "finished"
CAMPAIGN_STATES = (RUNNING, STOPPED, WAITING, FINISHED)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True),
    # the issue folder, relative to the workspace when inside it
    Column("issue_path", String(1000), nullable=False),
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="CASCADE"), nullable=False),
    # short name for Message-ID and Feedback-ID (the issue folder's name)
    Column("label", String(100), nullable=False),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("runner", String(200), nullable=True),
    Column("heartbeat_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    # set once every list member of the start has a delivery row
    Column("enqueued_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(sql_in("state", CAMPAIGN_STATES), name="state"),
    UniqueConstraint("issue_path", "list_id", name="uq_campaigns_issue_path_list_id"),
)


@dataclass(frozen=True)
class Campaign:
    """One campaign row (see the module docstring for ``state``)."""

    id: int
    issue_path: str
    list_id: int
    list_name: str
    label: str
    subject: str
    html: str
    text: str
    state: str
    runner: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    enqueued_at: datetime | None
    finished_at: datetime | None


def _campaign_query() -> Any:
    return select(campaigns, lists.c.name.label("list_name")).join(
        lists, lists.c.id == campaigns.c.list_id
    )


def _campaign(row: Any) -> Campaign:
    return Campaign(**{name: getattr(row, name) for name in Campaign.__dataclass_fields__})


def find_campaign(conn: Connection, issue_path: str, list_id: int) -> Campaign | None:
    """The campaign of ``issue_path`` to ``list_id``, or None."""
    row = conn.execute(
        _campaign_query().where(
            campaigns.c.issue_path == issue_path, campaigns.c.list_id == list_id
        )
    ).first()
    return None if row is None else _campaign(row)


def create_campaign(
    store: Store,
    *,
    issue_path: str,
    list_id: int,
    label: str,
    subject: str,
    html: str,
    text: str,
    now: datetime,
) -> Campaign:
    """Insert a new campaign (state ``stopped``: nothing running yet) -> it.

    When another process created the same campaign a moment earlier, returns theirs.
    """
    try:
        with store.write() as conn:
            conn.execute(
                insert(campaigns).values(
                    issue_path=issue_path,
                    list_id=list_id,
                    label=label,
                    subject=subject,
                    html=html,
                    text=text,
                    state=STOPPED,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        pass  # created by someone else between our look and our insert
    with store.read() as conn:
        found = find_campaign(conn, issue_path, list_id)
    assert found is not None
    return found


def lock_campaign(conn: Connection, campaign_id: int) -> bool:
    """Serialise the senders' joins, leaves and enqueues of one campaign on PostgreSQL
    (SQLite's write lock already does) -> whether the campaign's rows are all queued.

    Two senders starting at once must neither both think they are alone nor both
    insert the same delivery rows.
    """
    query = select(campaigns.c.enqueued_at).where(campaigns.c.id == campaign_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.scalar(query) is not None


def mark_enqueued(conn: Connection, campaign_id: int, now: datetime) -> None:
    """Record that every list member of the start has a delivery row."""
    conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id)
        .values(enqueued_at=now, updated_at=now)
    )


def campaigns_due(conn: Connection, now: datetime) -> list[Campaign]:
    """Campaigns not running that have deferred rows whose next attempt has come."""
    due = exists().where(
        deliveries.c.campaign_id == campaigns.c.id,
        deliveries.c.status == DEFERRED,
        deliveries.c.next_attempt_at <= now,
    )
    rows = conn.execute(
        _campaign_query().where(campaigns.c.state != RUNNING, due).order_by(campaigns.c.id)
    )
    return [_campaign(row) for row in rows]


def skip_waiting(conn: Connection, left: Sequence[tuple[int, int]], now: datetime) -> set[int]:
    """People who just left a list: their rows still waiting in that list's campaigns
    (queued or deferred) -> skipped, in the caller's write transaction -> the ids of
    those with a message in flight (a row ``sending``, any campaign) after it.

    ``left`` holds (subscriber id, list id) pairs. Changing the rows, not only reading
    them, keeps a sender from sending to them afterwards: on PostgreSQL a claim that
    read the person as a member before this commit re-checks each row it locks against
    the row's newest version, where it is no longer queued; a claim that locked one
    first makes this wait, and the row then shows as in flight. On SQLite the write lock
    orders claims and this.
    """
    if not left:
        return set()
    by_list: dict[int, list[int]] = {}
    for subscriber_id, list_id in left:
        by_list.setdefault(list_id, []).append(subscriber_id)
    for list_id, subscriber_ids in sorted(by_list.items()):
        conn.execute(
            update(deliveries)
            .where(
                among(conn, deliveries.c.subscriber_id, sorted(set(subscriber_ids))),
                deliveries.c.status.in_((QUEUED, DEFERRED)),
                deliveries.c.campaign_id.in_(
                    select(campaigns.c.id).where(campaigns.c.list_id == list_id)
                ),
            )
            .values(status=SKIPPED, reply="not sent: unsubscribed", updated_at=now)
        )
    return still_in_flight(conn, [subscriber_id for subscriber_id, _ in left])
