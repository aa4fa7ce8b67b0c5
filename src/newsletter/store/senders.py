"""The senders of a campaign: every process sending it holds a lease of its own.

Several ``send`` processes, on one host or on many, may work on one campaign at once.
Each inserts a ``campaign_senders`` row when it starts and holds it as a lease
(``store.lease``: state ``running``, holder, heartbeat). Every delivery row it claims
carries its sender id, so when a sender dies its in-flight rows, and only those, go
back to the queue: at once when it was a process of this host that no longer exists,
else once its heartbeat is older than the stale limit.

The campaign row is ``running`` while any sender is; every sender beats its heartbeat
and ``runner`` names the last one to join. The last sender to leave puts the campaign
in the state its rows leave it in (finished, waiting or stopped): any sender may
finish it.

Functions take a ``Store`` and run their own write transaction, or an open
``Connection`` inside the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    func,
    insert,
    or_,
    select,
    update,
)

from newsletter.store.campaigns import FINISHED, campaigns, lock_campaign
from newsletter.store.deliveries import QUEUED, SENDING, counts, deliveries, pending_now
from newsletter.store.lease import (
    HOLDER_LENGTH,
    RUNNING,
    LeaseColumns,
    holder_is_dead,
    update_if_held,
)
from newsletter.store.ops import tally
from newsletter.store.schema import UtcDateTime, metadata, sql_in
from newsletter.store.subscribers import Store

LEFT = "left"  # ended its run and handed back what it held
LOST = "lost"  # died or went silent; its in-flight rows were put back in the queue
SENDER_STATES = (RUNNING, LEFT, LOST)

campaign_senders = Table(
    "campaign_senders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("holder", String(HOLDER_LENGTH), nullable=False),
    Column("state", String(16), nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    CheckConstraint(sql_in("state", SENDER_STATES), name="state"),
    Index("ix_campaign_senders_campaign_id_state", "campaign_id", "state"),
)

SENDER_LEASE = LeaseColumns(
    campaign_senders,
    state=campaign_senders.c.state,
    holder=campaign_senders.c.holder,
    heartbeat=campaign_senders.c.heartbeat_at,
)


@dataclass(frozen=True)
class Joined:
    """A sender's place in a campaign: its row id, and how many other live senders
    there were when it joined (0: it started or took over the campaign)."""

    sender_id: int
    others: int


@dataclass(frozen=True)
class Beat:
    """What a heartbeat found: whether this sender still holds its lease, how many
    senders are live (itself included), how many in-flight rows of dead ones it put
    back in the queue, and, when others share the campaign, how many of its rows are
    left to try now (``left``; None when this sender is alone)."""

    held: bool
    live: int
    recovered: int
    left: int | None = None


def live_senders(conn: Connection, campaign_id: int, stale_before: datetime) -> list[int]:
    """Ids of the senders of ``campaign_id`` still alive: running, beating since
    ``stale_before``, and not a process of this host that no longer exists."""
    rows = conn.execute(
        select(campaign_senders.c.id, campaign_senders.c.holder).where(
            campaign_senders.c.campaign_id == campaign_id,
            campaign_senders.c.state == RUNNING,
            campaign_senders.c.heartbeat_at >= stale_before,
        )
    )
    return [sender_id for sender_id, holder in rows if not holder_is_dead(holder)]


def join_campaign(
    store: Store, campaign_id: int, holder: str, now: datetime, stale_before: datetime
) -> Joined:
    """Make ``holder`` one of the senders of ``campaign_id`` -> Joined.

    The campaign becomes (or stays) ``running`` with ``holder`` as its runner; a
    campaign whose senders all died is simply taken over (``recover_orphans`` puts
    their rows back).
    """
    with store.write() as conn:
        lock_campaign(conn, campaign_id)
        # a run of this very thread that never left (it lost the database) is over
        conn.execute(
            update(campaign_senders)
            .where(
                campaign_senders.c.campaign_id == campaign_id,
                campaign_senders.c.state == RUNNING,
                campaign_senders.c.holder == holder[:HOLDER_LENGTH],
            )
            .values(state=LOST, ended_at=now)
        )
        others = live_senders(conn, campaign_id, stale_before)
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(
                state=RUNNING,
                runner=holder[:HOLDER_LENGTH],
                heartbeat_at=now,
                started_at=func.coalesce(campaigns.c.started_at, now),
                finished_at=None,
                updated_at=now,
            )
        )
        sender_id = conn.execute(
            insert(campaign_senders)
            .values(
                campaign_id=campaign_id,
                holder=holder[:HOLDER_LENGTH],
                state=RUNNING,
                heartbeat_at=now,
                started_at=now,
            )
            .returning(campaign_senders.c.id)
        ).scalar_one()
    return Joined(int(sender_id), len(others))


def recover_orphans(
    conn: Connection, campaign_id: int, stale_before: datetime, now: datetime
) -> int:
    """In-flight rows of ``campaign_id`` held by no live sender -> queued again -> how
    many (they will be resent: whoever's server had taken one gets it twice).

    Senders found dead are marked ``lost``. Rows in flight without a sender (left by a
    version that did not record one) count as orphans too.
    """
    return _recover(conn, campaign_id, stale_before, now)[0]


def _recover(
    conn: Connection, campaign_id: int, stale_before: datetime, now: datetime
) -> tuple[int, int]:
    """``recover_orphans`` -> (rows put back, live senders)."""
    alive = live_senders(conn, campaign_id, stale_before)
    conn.execute(
        update(campaign_senders)
        .where(
            campaign_senders.c.campaign_id == campaign_id,
            campaign_senders.c.state == RUNNING,
            campaign_senders.c.id.not_in(alive),
        )
        .values(state=LOST, ended_at=now)
    )
    orphaned = or_(deliveries.c.sender_id.is_(None), deliveries.c.sender_id.not_in(alive))
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == SENDING, orphaned)
        .values(status=QUEUED, sender_id=None, updated_at=now)
    )
    return int(result.rowcount or 0), len(alive)


def beat(
    conn: Connection,
    campaign_id: int,
    sender_id: int,
    holder: str,
    now: datetime,
    stale_before: datetime,
    count_left: bool = False,
) -> Beat:
    """``holder`` says it is alive; dead senders' rows go back to the queue -> Beat.

    A sender whose lease was taken (marked lost after a long silence) learns it here
    and must stop claiming: its rows may already be someone else's. The rows left are
    counted when others share the campaign, or when ``count_left`` asks (a sender that
    found nothing to claim, before it leaves).
    """
    held = update_if_held(conn, SENDER_LEASE, sender_id, holder, heartbeat_at=now)
    if not held:
        return Beat(held=False, live=0, recovered=0)
    conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.state == RUNNING)
        .values(heartbeat_at=now)
    )
    recovered, live = _recover(conn, campaign_id, stale_before, now)
    left = pending_now(conn, campaign_id, now) if live > 1 or count_left else None
    return Beat(held=True, live=live, recovered=recovered, left=left)


def leave_campaign(
    store: Store,
    campaign_id: int,
    sender_id: int,
    holder: str,
    now: datetime,
    stale_before: datetime,
    final_state: Any,
) -> str | None:
    """``holder`` ends its run: its rows still in flight go back to the queue, its
    lease ends -> the campaign's new state if it was the last live sender (decided by
    ``final_state(rows per status)``), else None (the others carry on).
    """
    with store.write() as conn:
        lock_campaign(conn, campaign_id)
        conn.execute(
            update(deliveries)
            .where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.status == SENDING,
                deliveries.c.sender_id == sender_id,
            )
            .values(status=QUEUED, sender_id=None, updated_at=now)
        )
        update_if_held(conn, SENDER_LEASE, sender_id, holder, state=LEFT, ended_at=now)
        if live_senders(conn, campaign_id, stale_before):
            return None
        state: str = final_state(counts(conn, campaign_id))
        values: dict[str, Any] = {"state": state, "runner": None, "updated_at": now}
        if state == FINISHED:
            values["finished_at"] = now
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.state == RUNNING)
            .values(**values)
        )
        return state


def sender_counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    """How many senders ``campaign_id`` had, by state (every run of it counts)."""
    return tally(
        conn,
        campaign_senders.c.state,
        SENDER_STATES,
        campaign_senders.c.campaign_id == campaign_id,
    )
