"""The delivery ledger: ``campaigns`` (one per issue and list) and ``deliveries`` (one row
per campaign and subscriber), and the few SQL steps the sender composes.

A campaign is the send of one issue folder to one list. It keeps a snapshot of what
is sent (subject, rendered HTML and text, slots unfilled), taken when the send first
starts, so a send resumed after a crash or an edit delivers the same message to the
rest of the list. Its ``state`` is:

``running``   a process is sending it (``runner`` = host:pid:thread, fresh ``heartbeat_at``)
``stopped``   interrupted (Ctrl-C, a stop on error, a crash noticed on resume): resumable
``waiting``   one pass done, deferred recipients left for a later attempt
``finished``  nobody left to try: every row is sent, failed, skipped or unknown

A delivery row moves ``queued`` -> ``sending`` (committed just before its bytes go
out) -> ``sent`` | ``failed`` | ``deferred`` | ``unknown`` (committed right after the
server answered), or ``queued`` -> ``skipped`` (no longer sendable when its turn
came). ``deferred`` rows go back to ``sending`` when ``next_attempt_at`` has passed;
``failed`` rows only through ``requeue_failed`` (``send --retry-failed``). ``sent`` and
``unknown`` rows are never sent again.

Durability
----------
On SQLite the sender's ``LedgerSession`` commits with ``synchronous = NORMAL`` (WAL):
each commit is safe from a crash of the process (``kill -9``, an exception) but not
fsynced, so a power cut or OS crash may roll back the last commits. A rolled-back
commit can only make rows look *less* done (``sending`` -> ``queued``, ``sent`` ->
``sending``), never more, so the cost is a resend (a duplicate), never a missed
recipient. It made the ledger's group commits about 1.5 ms cheaper each (one fsync),
worth ~50% of throughput (bench/bench_send.py). PostgreSQL keeps full durability.

Every function takes an open ``Connection`` inside the caller's write transaction
(or a ``Store`` when it runs its own) and uses portable SQL only; ``LedgerSession``
holds the sender's own connection and runs its few hot statements precompiled.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from newsletter.store.addresses import address_hash
from newsletter.store.ops import consent_row, record_consents, suppress_subscriber
from newsletter.store.records import Consent
from newsletter.store.schema import (
    ACTIVE,
    BOUNCED,
    UtcDateTime,
    lists,
    memberships,
    metadata,
    subscribers,
    suppressions,
)
from newsletter.store.subscribers import DESCRIBE_HOOKS, ERASE_HOOKS, WRITE_OPTION, Store, iso

# campaign states
RUNNING = "running"
STOPPED = "stopped"
WAITING = "waiting"
FINISHED = "finished"
CAMPAIGN_STATES = (RUNNING, STOPPED, WAITING, FINISHED)

# delivery statuses
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DEFERRED = "deferred"
FAILED = "failed"
SKIPPED = "skipped"
UNKNOWN = "unknown"
DELIVERY_STATUSES = (QUEUED, SENDING, SENT, DEFERRED, FAILED, SKIPPED, UNKNOWN)
# rows nobody will try again
FINAL_STATUSES = (SENT, FAILED, SKIPPED, UNKNOWN)

ENQUEUE_BATCH = 5000


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


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
    CheckConstraint(_in("state", CAMPAIGN_STATES), name="state"),
    UniqueConstraint("issue_path", "list_id", name="uq_campaigns_issue_path_list_id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # the address the message went to (NULL once the subscriber is erased)
    Column("email", String(320), nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("first_attempt_at", UtcDateTime, nullable=True),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("code", Integer, nullable=True),
    Column("enhanced", String(16), nullable=False, default=""),
    Column("reply", Text, nullable=False, default=""),
    CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    UniqueConstraint("campaign_id", "subscriber_id", name="uq_deliveries_campaign_id"),
    # claiming (the next queued rows in id order), counting per status
    Index("ix_deliveries_campaign_status_id", "campaign_id", "status", "id"),
    Index("ix_deliveries_subscriber_id", "subscriber_id"),
)


# --- values ---------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Claimed:
    """A delivery row handed to a worker: who to write to, and how often we tried."""

    id: int
    subscriber_id: int
    email: str
    name: str
    attributes: dict[str, Any]
    attempts: int
    first_attempt_at: datetime | None = None


@dataclass(frozen=True)
class Result:
    """What to record for one row after the server answered (or we gave up).

    ``status`` is one of sent, failed, deferred, unknown, or queued (handed back
    untried: its claim is undone); ``bounce`` asks to suppress the subscriber as
    hard-bounced.
    """

    id: int
    status: str
    code: int | None = None
    enhanced: str = ""
    reply: str = ""
    next_attempt_at: datetime | None = None
    subscriber_id: int = 0
    email: str = ""
    bounce: bool = False


def runner_name() -> str:
    """``host:pid:thread`` of the caller, as stored in ``campaigns.runner`` (two threads
    of one process, say a CLI send and serve's scheduler, are two runners)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def runner_is_dead(runner: str | None) -> bool:
    """True when ``runner`` names a process on this host that no longer exists."""
    if not runner:
        return True
    host, _, rest = runner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


# --- campaigns ------------------------------------------------------------------------------


def _campaign_query() -> Any:
    return select(campaigns, lists.c.name.label("list_name")).join(
        lists, lists.c.id == campaigns.c.list_id
    )


def _campaign(row: Any) -> Campaign:
    return Campaign(
        id=row.id,
        issue_path=row.issue_path,
        list_id=row.list_id,
        list_name=row.list_name,
        label=row.label,
        subject=row.subject,
        html=row.html,
        text=row.text,
        state=row.state,
        runner=row.runner,
        heartbeat_at=row.heartbeat_at,
        created_at=row.created_at,
        started_at=row.started_at,
        enqueued_at=row.enqueued_at,
        finished_at=row.finished_at,
    )


def find_campaign(conn: Connection, issue_path: str, list_id: int) -> Campaign | None:
    """The campaign of ``issue_path`` to ``list_id``, or None."""
    row = conn.execute(
        _campaign_query().where(
            campaigns.c.issue_path == issue_path, campaigns.c.list_id == list_id
        )
    ).first()
    return None if row is None else _campaign(row)


def get_campaign(conn: Connection, campaign_id: int) -> Campaign | None:
    """The campaign with ``campaign_id``, or None."""
    row = conn.execute(_campaign_query().where(campaigns.c.id == campaign_id)).first()
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


def describe_runner(runner: str | None) -> str:
    """``host:pid[:thread]`` as stored in ``campaigns.runner`` -> "process PID on HOST"."""
    if not runner:
        return "an unknown process"
    host, _, rest = runner.partition(":")
    pid = rest.partition(":")[0]
    return f"process {pid} on {host}" if pid else f"a process on {host}"


def acquire(
    store: Store, campaign: Campaign, runner: str, now: datetime, stale: datetime
) -> str | None:
    """Make ``runner`` the one process sending ``campaign`` -> None if it now is, else
    the runner (``host:pid:thread``) that holds it, read in the same transaction.

    Succeeds when the campaign is not running, or its runner stopped beating before
    ``stale``, or its runner is a process of this host that no longer exists (a
    ``kill -9``). One conditional UPDATE on what was read, so two processes racing
    for it cannot both win. The holder comes from the row as it is now, never from
    ``campaign`` (read earlier, maybe before the holder took it).
    """
    with store.write() as conn:
        row = conn.execute(
            select(campaigns.c.state, campaigns.c.runner, campaigns.c.heartbeat_at).where(
                campaigns.c.id == campaign.id
            )
        ).first()
        if row is None:
            return ""
        state, current, beat = row
        if state == RUNNING and current != runner:
            fresh = beat is not None and beat >= stale
            if fresh and not runner_is_dead(current):
                return str(current or "")
        result = conn.execute(
            update(campaigns)
            .where(
                campaigns.c.id == campaign.id,
                campaigns.c.state == state,
                campaigns.c.runner.is_(None) if current is None else campaigns.c.runner == current,
            )
            .values(
                state=RUNNING,
                runner=runner,
                heartbeat_at=now,
                started_at=func.coalesce(campaigns.c.started_at, now),
                updated_at=now,
            )
        )
        if result.rowcount == 1:
            return None
        holder = conn.scalar(select(campaigns.c.runner).where(campaigns.c.id == campaign.id))
        return str(holder or "")


def heartbeat(conn: Connection, campaign_id: int, runner: str, now: datetime) -> None:
    """Tell other processes ``runner`` is still sending ``campaign_id``."""
    conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.runner == runner)
        .values(heartbeat_at=now)
    )


def release_campaign(
    store: Store, campaign_id: int, runner: str, state: str, now: datetime
) -> None:
    """End ``runner``'s run: in-flight rows back to queued, campaign to ``state``."""
    with store.write() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == SENDING)
            .values(status=QUEUED, updated_at=now)
        )
        values: dict[str, Any] = {"state": state, "runner": None, "updated_at": now}
        if state == FINISHED:
            values["finished_at"] = now
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.runner == runner)
            .values(**values)
        )


def set_state(conn: Connection, campaign_id: int, state: str, now: datetime) -> None:
    """Set a campaign's state (no runner involved: e.g. finished before anything ran)."""
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if state == FINISHED:
        values["finished_at"] = now
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(**values))


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


# --- filling the ledger -----------------------------------------------------------------------


def _sendable_members(list_id: int) -> Any:
    return and_(
        memberships.c.list_id == list_id,
        memberships.c.status == ACTIVE,
        subscribers.c.status == ACTIVE,
        subscribers.c.email.is_not(None),
    )


def count_sendable(conn: Connection, list_id: int) -> int:
    """How many members of ``list_id`` may receive a campaign now (before hash checks)."""
    query = (
        select(func.count())
        .select_from(memberships)
        .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
        .where(_sendable_members(list_id))
    )
    return int(conn.scalar(query) or 0)


def enqueue(store: Store, campaign_id: int, list_id: int, now: datetime) -> int:
    """Give every sendable member of ``list_id`` a queued row -> how many rows were added.

    Runs as ``INSERT ... SELECT ... WHERE NOT EXISTS`` in batches of ``ENQUEUE_BATCH``
    members, each its own short write transaction (the web process can record an
    unsubscribe in between), and nothing is loaded into memory. Idempotent: a rerun
    after a crash halfway adds only the missing rows. Marks the campaign enqueued.
    """
    added = 0
    last = 0
    member = memberships.c.subscriber_id
    while True:
        with store.write() as conn:
            upper = conn.scalar(
                select(member)
                .where(memberships.c.list_id == list_id, memberships.c.status == ACTIVE)
                .where(member > last)
                .order_by(member)
                .offset(ENQUEUE_BATCH - 1)
                .limit(1)
            )
            already = exists().where(
                deliveries.c.campaign_id == campaign_id, deliveries.c.subscriber_id == member
            )
            source = (
                select(
                    literal(campaign_id, Integer),
                    member,
                    subscribers.c.email,
                    literal(QUEUED, String),
                    literal(0, Integer),
                    literal(now, UtcDateTime()),
                    literal("", String),
                    literal("", Text),
                )
                .select_from(memberships)
                .join(subscribers, subscribers.c.id == member)
                .where(_sendable_members(list_id), member > last, ~already)
            )
            if upper is not None:
                source = source.where(member <= upper)
            result = conn.execute(
                insert(deliveries).from_select(
                    [
                        "campaign_id",
                        "subscriber_id",
                        "email",
                        "status",
                        "attempts",
                        "updated_at",
                        "enhanced",
                        "reply",
                    ],
                    source,
                )
            )
            added += max(result.rowcount or 0, 0)
            if upper is None:
                conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(enqueued_at=now, updated_at=now)
                )
                return added
        last = upper


def recover_in_flight(conn: Connection, campaign_id: int, now: datetime) -> int:
    """Rows a crashed run left in ``sending`` -> queued again (they will be resent)."""
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == SENDING)
        .values(status=QUEUED, updated_at=now)
    )
    return int(result.rowcount or 0)


def requeue_failed(conn: Connection, campaign_id: int, now: datetime) -> int:
    """``--retry-failed``: failed rows back to queued with a fresh retry lifetime."""
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == FAILED)
        .values(status=QUEUED, first_attempt_at=None, next_attempt_at=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def requeue_unknown(conn: Connection, campaign_id: int, now: datetime) -> int:
    """``--retry-unknown``: rows whose message got no reply after the data ("maybe
    delivered") back to queued. The resend reuses the Message-ID, so a receiver that
    did take the first copy can drop the second."""
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == UNKNOWN)
        .values(status=QUEUED, first_attempt_at=None, next_attempt_at=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def expire_deferred(
    conn: Connection, campaign_id: int, first_before: datetime, now: datetime
) -> int:
    """Deferred rows first tried before ``first_before`` -> failed for good."""
    result = conn.execute(
        update(deliveries)
        .where(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.status == DEFERRED,
            deliveries.c.first_attempt_at < first_before,
        )
        .values(
            status=FAILED,
            next_attempt_at=None,
            updated_at=now,
            reply="gave up: still deferred at the end of send.retry_lifetime_hours; "
            + deliveries.c.reply,
        )
    )
    return int(result.rowcount or 0)


# --- claiming and recording: the dispatcher's hot path --------------------------------------


class _Statement:
    """A statement compiled once for a dialect and run on the raw DB-API cursor.

    SQLAlchemy's per-execution work (cache key, parameter processing, result wrapping)
    cost about 0.2 ms per statement here, several times a whole transaction's SQL, and
    the dispatcher runs thousands of small transactions; this is the same SQL with the
    same type conversions, minus that bookkeeping (as ``ops.bulk_insert`` does).
    """

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._defaults = dict(compiled.params)
        self._names = list(compiled.positiontup or ()) if compiled.positional else None
        self._processors = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor

    def params(self, values: dict[str, Any]) -> Any:
        """``values`` by bind name -> what the driver takes (tuple or dict), converted."""
        merged = {**self._defaults, **values}
        for name, processor in self._processors.items():
            merged[name] = processor(merged[name])
        if self._names is None:
            return merged
        return tuple(merged[name] for name in self._names)


def _result_processor(column: Any, dialect: Any) -> Any:
    return column.type.dialect_impl(dialect).result_processor(dialect, None)


class Step(NamedTuple):
    """What one ``LedgerSession.step`` committed: the rows claimed (now ``sending``),
    how many rows it marked skipped, and which re-checked rows were among them."""

    claimed: list[Claimed]
    skipped: int
    dropped: frozenset[int] = frozenset()


class LedgerSession:
    """One connection held by the dispatcher for a run, and its compiled statements.

    ``step(results, want, now)`` is one write transaction: record ``results``, then
    claim up to ``want`` rows (see ``claim`` rules below); it commits before it
    returns. Use as a context manager.

    Claim rules: candidates are queued rows, then deferred rows whose time has come,
    in id order. Each is checked against the subscriber as it is at this moment
    (membership and global status active, address not on the suppression list): who
    left meanwhile is marked ``skipped`` and never written to. The check runs inside
    the write transaction, so an unsubscribe committed before it is always seen.
    """

    def __init__(self, store: Store, campaign_id: int, list_id: int) -> None:
        self.campaign_id = campaign_id
        self.list_id = list_id
        self._conn = store.engine.connect().execution_options(**{WRITE_OPTION: True})
        dialect = self._dialect = self._conn.dialect
        self._restore_sync: Any = None
        self._restore_checkpoint: Any = None
        self._raw: Any = None  # the SQLite driver connection, for the fast ``step``
        if dialect.name == "sqlite":
            # WAL with synchronous=NORMAL: a commit is safe from a process crash (kill -9)
            # without an fsync each; see "Durability" in the module docstring
            raw = self._conn.connection.dbapi_connection
            assert raw is not None
            self._restore_sync = raw.execute("PRAGMA synchronous").fetchone()[0]
            raw.execute("PRAGMA synchronous = NORMAL")
            # No automatic checkpoint after our commits: one runs every ~1000 WAL pages
            # and fsyncs twice (about 40 ms here, the dispatcher stalled and every worker
            # waiting, some 14 times per 5,000 messages). We checkpoint on each heartbeat
            # instead (the WAL holds at most one heartbeat of writes) and when done.
            self._restore_checkpoint = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            raw.execute("PRAGMA wal_autocheckpoint = 0")
            # autocommit at the driver level (see store.engine): BEGIN/COMMIT are ours
            if raw.isolation_level is None:
                self._raw = raw
        candidates = (
            _with_reader(
                select(
                    deliveries.c.id,
                    deliveries.c.subscriber_id,
                    deliveries.c.attempts,
                    deliveries.c.first_attempt_at,
                    subscribers.c.email,
                    subscribers.c.name,
                    subscribers.c.attributes,
                    subscribers.c.status,
                    memberships.c.status,
                ),
                bindparam("list_id"),
            )
            .where(deliveries.c.campaign_id == bindparam("campaign_id"))
            .order_by(deliveries.c.id)
            .limit(bindparam("limit"))
        )
        self._queued = _Statement(candidates.where(deliveries.c.status == QUEUED), dialect)
        self._due = _Statement(
            candidates.where(
                deliveries.c.status == DEFERRED,
                deliveries.c.next_attempt_at <= bindparam("now", type_=UtcDateTime()),
            ),
            dialect,
        )
        self._first_attempt = _result_processor(deliveries.c.first_attempt_at, dialect)
        self._attributes = _result_processor(subscribers.c.attributes, dialect)
        self._mark = _Statement(
            update(deliveries)
            .where(deliveries.c.id == bindparam("row_id"))
            .values(
                status=SENDING,
                email=bindparam("row_email"),
                attempts=deliveries.c.attempts + 1,
                first_attempt_at=func.coalesce(
                    deliveries.c.first_attempt_at, bindparam("row_now", type_=UtcDateTime())
                ),
                updated_at=bindparam("row_now", type_=UtcDateTime()),
            ),
            dialect,
        )
        self._skip = _Statement(
            update(deliveries)
            .where(deliveries.c.id == bindparam("row_id"))
            .values(
                status=SKIPPED,
                reply=bindparam("row_reply"),
                updated_at=bindparam("row_now", type_=UtcDateTime()),
            ),
            dialect,
        )
        self._hand_back = _Statement(
            update(deliveries)
            .where(deliveries.c.id == bindparam("row_id"), deliveries.c.status == SENDING)
            .values(
                status=QUEUED,
                attempts=deliveries.c.attempts - 1,
                updated_at=bindparam("row_now", type_=UtcDateTime()),
            ),
            dialect,
        )
        self._record = _Statement(
            update(deliveries)
            .where(deliveries.c.id == bindparam("row_id"))
            .values(
                status=bindparam("row_status"),
                code=bindparam("row_code", type_=Integer()),
                enhanced=bindparam("row_enhanced"),
                reply=bindparam("row_reply"),
                next_attempt_at=bindparam("row_next", type_=UtcDateTime()),
                sent_at=bindparam("row_sent", type_=UtcDateTime()),
                updated_at=bindparam("row_now", type_=UtcDateTime()),
            ),
            dialect,
        )
        self._blocked: dict[int, _Statement] = {}

    def close(self) -> None:
        """Give the connection back to the pool (with its usual durability).

        A step cut short (a second Ctrl-C between BEGIN and COMMIT) is rolled back
        first: its write lock would otherwise block the caller's own cleanup.
        """
        try:
            if self._restore_sync is not None:
                raw = self._conn.connection.dbapi_connection
                assert raw is not None
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raw.execute(f"PRAGMA synchronous = {int(self._restore_sync)}")
                self._checkpoint()
                raw.execute(f"PRAGMA wal_autocheckpoint = {int(self._restore_checkpoint)}")
        finally:
            self._conn.close()

    def defer_queued(self, now: datetime, next_attempt_at: datetime, reply: str) -> int:
        """Every still-queued row of the campaign -> deferred until ``next_attempt_at``
        with ``reply``, in one transaction -> how many (for a server refusing sessions:
        a later run tries them, instead of this one trying each in vain)."""
        with self._conn.begin():
            result = self._conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.campaign_id == self.campaign_id,
                    deliveries.c.status == QUEUED,
                )
                .values(
                    status=DEFERRED,
                    reply=reply,
                    first_attempt_at=func.coalesce(deliveries.c.first_attempt_at, now),
                    next_attempt_at=next_attempt_at,
                    updated_at=now,
                )
            )
        return int(result.rowcount or 0)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file as far as readers allow (SQLite only;
        PASSIVE: never waits for, nor blocks, other connections)."""
        if self._restore_checkpoint is not None:
            raw = self._conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def __enter__(self) -> LedgerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(
        self,
        results: Sequence[Result],
        want: int,
        now: datetime,
        runner: str | None = None,
        recheck: Sequence[int] = (),
    ) -> Step:
        """Record ``results``, re-check the held rows ``recheck``, claim up to ``want``
        rows, beat for ``runner`` if given, commit -> Step.

        ``recheck`` names rows this run holds (``sending``) and is about to try again
        after a wait (a reconnect backoff): each gets the claim's checks once more, and
        who left meanwhile is marked skipped (``Step.dropped``) instead of written to.
        """
        simple = runner is None and not recheck and not any(r.bounce for r in results)
        if self._raw is not None and simple:
            return Step(*self._step_raw(self._raw, results, want, now))
        with self._conn.begin():
            cursor = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                self._write_results(cursor, results, now)
                taken, skipped = self._claim(cursor, want, now) if want else ([], 0)
                dropped = self._recheck(cursor, recheck, now) if recheck else frozenset()
            finally:
                cursor.close()
            if runner is not None:
                heartbeat(self._conn, self.campaign_id, runner, now)
        if runner is not None:
            self._checkpoint()
        return Step(taken, skipped + len(dropped), dropped)

    def _recheck(self, cursor: Any, row_ids: Sequence[int], now: datetime) -> frozenset[int]:
        """Held rows whose reader may no longer receive -> their ids, marked skipped."""
        query = _with_reader(
            select(
                deliveries.c.id, subscribers.c.email, subscribers.c.status, memberships.c.status
            ),
            self.list_id,
        ).where(deliveries.c.id.in_(list(row_ids)), deliveries.c.status == SENDING)
        refused = self._refusals(cursor, [tuple(row) for row in self._conn.execute(query)])
        if refused:
            cursor.executemany(
                self._skip.sql,
                [
                    self._skip.params({"row_id": row_id, "row_reply": reason, "row_now": now})
                    for row_id, reason in refused.items()
                ],
            )
        return frozenset(refused)

    def _refusals(self, cursor: Any, rows: Sequence[tuple[Any, ...]]) -> dict[int, str]:
        """For (row id, email, subscriber status, membership status) rows: the ones whose
        reader may not receive now -> {row id: why} (the claim rules above)."""
        hashes = {row[0]: address_hash(row[1]) for row in rows if row[1] is not None}
        blocked = self._blocked_hashes(cursor, list(hashes.values()))
        refused = {}
        for row_id, email, status, member in rows:
            reason = _skip_reason(member, status, email)
            if not reason and hashes.get(row_id) in blocked:
                reason = "not sent: address is on the suppression list"
            if reason:
                refused[row_id] = reason
        return refused

    def _step_raw(
        self, raw: Any, results: Sequence[Result], want: int, now: datetime
    ) -> tuple[list[Claimed], int]:
        """``step`` on SQLite's own connection: the same SQL in the same kind of write
        transaction, without SQLAlchemy's begin/commit bookkeeping (events, transaction
        objects), about a third of a small step. Only for steps that run no SQLAlchemy
        statement (no heartbeat, no bounce), so the Connection never sees a transaction
        it did not start."""
        cursor = raw.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                self._write_results(cursor, results, now)
                taken, skipped = self._claim(cursor, want, now) if want else ([], 0)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
        finally:
            cursor.close()
        return taken, skipped

    def _write_results(self, cursor: Any, results: Sequence[Result], now: datetime) -> None:
        untried = [r for r in results if r.status == QUEUED]
        done = [r for r in results if r.status != QUEUED]
        if untried:
            cursor.executemany(
                self._hand_back.sql,
                [self._hand_back.params({"row_id": r.id, "row_now": now}) for r in untried],
            )
        if done:
            cursor.executemany(
                self._record.sql,
                [
                    self._record.params(
                        {
                            "row_id": r.id,
                            "row_status": r.status,
                            "row_code": r.code,
                            "row_enhanced": r.enhanced[:16],
                            "row_reply": r.reply,
                            "row_next": r.next_attempt_at,
                            "row_sent": now if r.status in (SENT, UNKNOWN) else None,
                            "row_now": now,
                        }
                    )
                    for r in done
                ],
            )
        for result in done:
            if result.bounce and result.email:
                _suppress_bounced(self._conn, result, now)

    def _blocked_hashes(self, cursor: Any, hashes: list[str]) -> set[str]:
        if not hashes:
            return set()
        statement = self._blocked.get(len(hashes))
        if statement is None:
            names = [f"h{i}" for i in range(len(hashes))]
            statement = _Statement(
                select(suppressions.c.email_hash).where(
                    suppressions.c.email_hash.in_([bindparam(name) for name in names])
                ),
                self._dialect,
            )
            self._blocked[len(hashes)] = statement
        values = {f"h{i}": digest for i, digest in enumerate(hashes)}
        cursor.execute(statement.sql, statement.params(values))
        return {row[0] for row in cursor.fetchall()}

    def _claim(self, cursor: Any, want: int, now: datetime) -> tuple[list[Claimed], int]:
        taken: list[Claimed] = []
        skipped = 0
        sources = [self._queued, self._due]
        while len(taken) < want and sources:
            statement = sources[0]
            values = {
                "list_id": self.list_id,
                "campaign_id": self.campaign_id,
                "limit": want - len(taken),
                "now": now,
            }
            cursor.execute(statement.sql, statement.params(values))
            rows = cursor.fetchall()
            if not rows:
                sources.pop(0)
                continue
            refused = self._refusals(cursor, [(r[0], r[4], r[7], r[8]) for r in rows])
            marks: list[Any] = []
            skips: list[Any] = []
            for row_id, sid, attempts, first, email, name, attrs, _status, _member in rows:
                reason = refused.get(row_id)
                if reason:
                    skips.append(
                        self._skip.params({"row_id": row_id, "row_reply": reason, "row_now": now})
                    )
                    continue
                marks.append(
                    self._mark.params({"row_id": row_id, "row_email": email, "row_now": now})
                )
                if self._first_attempt is not None:
                    first = self._first_attempt(first)
                if self._attributes is not None:
                    attrs = self._attributes(attrs)
                taken.append(
                    Claimed(
                        id=row_id,
                        subscriber_id=sid,
                        email=email,
                        name=name,
                        attributes=attrs or {},
                        attempts=attempts + 1,
                        first_attempt_at=first or now,
                    )
                )
            if marks:
                cursor.executemany(self._mark.sql, marks)
            if skips:
                cursor.executemany(self._skip.sql, skips)
                skipped += len(skips)
        return taken, skipped


def _with_reader(query: Any, list_id: Any) -> Any:
    """``query`` over deliveries joined to each row's subscriber and (if any) their
    membership of ``list_id``."""
    return (
        query.select_from(deliveries)
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .outerjoin(
            memberships,
            and_(
                memberships.c.subscriber_id == deliveries.c.subscriber_id,
                memberships.c.list_id == list_id,
            ),
        )
    )


def _skip_reason(member_status: str | None, subscriber_status: str, email: str | None) -> str:
    if email is None or subscriber_status != ACTIVE:
        return f"not sent: subscriber is {subscriber_status}"
    if member_status != ACTIVE:
        return f"not sent: {member_status or 'no longer on the list'}"
    return ""


def _suppress_bounced(conn: Connection, result: Result, now: datetime) -> None:
    """A hard bounce: suppress the subscriber everywhere, with a consent-trail record."""
    if suppress_subscriber(conn, result.subscriber_id, result.email, BOUNCED, now):
        consent = Consent(
            source="mail",
            detail={"delivery_id": result.id, "reply": f"{result.code} {result.reply}"},
        )
        record_consents(conn, [consent_row(result.subscriber_id, None, "bounce", consent, now)])


def counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    """Rows per status for ``campaign_id`` (every status present, 0 when none)."""
    found: dict[str, int] = dict(
        conn.execute(
            select(deliveries.c.status, func.count())
            .where(deliveries.c.campaign_id == campaign_id)
            .group_by(deliveries.c.status)
        ).all()
    )
    return {status: int(found.get(status, 0)) for status in DELIVERY_STATUSES}


def next_attempt(conn: Connection, campaign_id: int) -> datetime | None:
    """When the earliest deferred row of ``campaign_id`` may be tried again, or None."""
    value: datetime | None = conn.scalar(
        select(func.min(deliveries.c.next_attempt_at)).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.status == DEFERRED
        )
    )
    if value is not None and value.tzinfo is None:  # func.min loses the column type
        value = UtcDateTime().process_result_value(value, conn.dialect)
    return value


def pending_now(conn: Connection, campaign_id: int, now: datetime) -> int:
    """Rows a run started at ``now`` would try: queued, in flight, or deferred and due."""
    return int(
        conn.scalar(
            select(func.count())
            .select_from(deliveries)
            .where(
                deliveries.c.campaign_id == campaign_id,
                or_(
                    deliveries.c.status.in_((QUEUED, SENDING)),
                    and_(deliveries.c.status == DEFERRED, deliveries.c.next_attempt_at <= now),
                ),
            )
        )
        or 0
    )


def failures(conn: Connection, campaign_id: int, limit: int = 20) -> list[tuple[str, str]]:
    """Up to ``limit`` failed rows as (address, server reply), for the summary."""
    rows = conn.execute(
        select(deliveries.c.email, deliveries.c.code, deliveries.c.reply)
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == FAILED)
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    return [(email or "(erased)", f"{code or ''} {reply}".strip()) for email, code, reply in rows]


# --- erasure --------------------------------------------------------------------------------


def _scrub_deliveries(conn: Connection, subscriber_id: int) -> None:
    """Erase hook: the ledger keeps the row (it was sent) but not the address or reply."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.subscriber_id == subscriber_id)
        .values(email=None, reply="")
    )


def ids_with_status(conn: Connection, campaign_id: int, statuses: Iterable[str]) -> list[int]:
    """Delivery ids of ``campaign_id`` in ``statuses`` (tests and tools; small campaigns)."""
    return list(
        conn.scalars(
            select(deliveries.c.id)
            .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status.in_(list(statuses)))
            .order_by(deliveries.c.id)
        )
    )


def _describe_deliveries(conn: Connection, subscriber_id: int) -> tuple[str, Any]:
    """Describe hook: every message sent (or tried) to the subscriber, for the export."""
    rows = conn.execute(
        select(
            campaigns.c.label,
            deliveries.c.email,
            deliveries.c.status,
            deliveries.c.sent_at,
            deliveries.c.code,
            deliveries.c.reply,
        )
        .join(campaigns, campaigns.c.id == deliveries.c.campaign_id)
        .where(deliveries.c.subscriber_id == subscriber_id)
        .order_by(deliveries.c.id)
    ).all()
    return "deliveries", [
        {
            "issue": row.label,
            "address": row.email,
            "status": row.status,
            "sent_at": iso(row.sent_at),
            "reply": f"{row.code or ''} {row.reply}".strip(),
        }
        for row in rows
    ]


if _scrub_deliveries not in ERASE_HOOKS:
    ERASE_HOOKS.append(_scrub_deliveries)
if _describe_deliveries not in DESCRIBE_HOOKS:
    DESCRIBE_HOOKS.append(_describe_deliveries)
