"""The sender's hot path: ``LedgerSession`` claims delivery rows and records outcomes.

Durability
----------
On SQLite the session commits with ``synchronous = NORMAL`` (WAL): each commit is safe
from a crash of the process (``kill -9``, an exception) but not fsynced, so a power cut
or OS crash may roll back the last commits. A rolled-back commit can only make rows look
*less* done (``sending`` -> ``queued``, ``sent`` -> ``sending``), never more, so the cost
is a resend (a duplicate), never a missed recipient, and the group commits skip an
fsync each. On PostgreSQL the session sets ``synchronous_commit = off`` for the same
reason and with the same cost: a crash of the database server may roll back its last
commits (a fraction of a second), never corrupt them. Everything else (unsubscribes,
imports, the campaign's start and end) keeps full durability.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import DBAPIError

from newsletter.store.addresses import address_hash
from newsletter.store.base import WRITE_OPTION
from newsletter.store.compiled import CompiledStatement
from newsletter.store.deliveries import (
    DEFERRED,
    QUEUED,
    SENDING,
    SENT,
    UNKNOWN,
    Claimed,
    Result,
    deliveries,
)
from newsletter.store.ledger_sql import (
    blocked_hashes_statement,
    compile_ledger,
    result_processor,
    with_reader,
)
from newsletter.store.ops import consent_row, record_consents, suppress_subscriber
from newsletter.store.records import Consent
from newsletter.store.schema import ACTIVE, BOUNCED, memberships, subscribers
from newsletter.store.senders import Beat, beat
from newsletter.store.subscribers import Store


class Step(NamedTuple):
    """What one ``LedgerSession.step`` committed: the rows claimed (now ``sending``),
    how many rows it marked skipped, which re-checked rows were among them, and what
    the heartbeat found (None: no beat in this step)."""

    claimed: list[Claimed]
    skipped: int
    dropped: frozenset[int] = frozenset()
    beat: Beat | None = None


class Sender(NamedTuple):
    """Who claims in a session: the ``campaign_senders`` row and its holder."""

    id: int
    holder: str


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

    def __init__(
        self, store: Store, campaign_id: int, list_id: int, sender: Sender | None = None
    ) -> None:
        self.campaign_id = campaign_id
        self.list_id = list_id
        self.sender = sender
        self._conn = store.engine.connect().execution_options(**{WRITE_OPTION: True})
        self._dialect = self._conn.dialect
        self._restore_sync: Any = None
        self._restore_checkpoint: Any = None
        self._raw: Any = None  # the SQLite driver connection, for the fast ``step``
        self._tuned_postgresql = False
        try:
            self._tune()
        except BaseException:
            self._conn.close()
            raise
        self._sql = compile_ledger(self._dialect)
        self._first_attempt = result_processor(deliveries.c.first_attempt_at, self._dialect)
        self._attributes = result_processor(subscribers.c.attributes, self._dialect)
        self._blocked: dict[int, CompiledStatement] = {}

    def _tune(self) -> None:
        """The session's durability trade (see the module docstring)."""
        if self._dialect.name == "sqlite":
            self._tune_sqlite()
        elif self._dialect.name == "postgresql":
            # a commit per group of outcomes without waiting for its WAL flush
            with self._conn.begin():
                self._conn.exec_driver_sql("SET synchronous_commit = off")
            self._tuned_postgresql = True

    def _tune_sqlite(self) -> None:
        """Commit without an fsync each and checkpoint only on our heartbeat (``close``
        puts both settings back)."""
        raw = self._conn.connection.dbapi_connection
        assert raw is not None
        # safe from a process crash without an fsync per commit (see the module docstring)
        self._restore_sync = raw.execute("PRAGMA synchronous").fetchone()[0]
        raw.execute("PRAGMA synchronous = NORMAL")
        # an automatic checkpoint fsyncs twice and stalls the dispatcher; ``_checkpoint``
        # runs on each heartbeat instead, so the WAL holds one heartbeat of writes
        self._restore_checkpoint = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        raw.execute("PRAGMA wal_autocheckpoint = 0")
        # autocommit at the driver level (see store.engine): BEGIN/COMMIT are ours
        if raw.isolation_level is None:
            self._raw = raw

    def close(self) -> None:
        """Give the connection back to the pool (with its usual durability).

        A step cut short (a second Ctrl-C between BEGIN and COMMIT) is rolled back
        first: its write lock would otherwise block the caller's own cleanup.
        """
        try:
            if self._tuned_postgresql and not self._conn.invalidated:
                self._reset_postgresql()
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

    def _reset_postgresql(self) -> None:
        """Full durability again before the connection goes back to the pool; a lost
        connection is thrown away instead."""
        try:
            if self._conn.in_transaction():
                self._conn.rollback()
            with self._conn.begin():
                self._conn.exec_driver_sql("RESET synchronous_commit")
        except DBAPIError:
            self._conn.invalidate()

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
        stale_before: datetime | None = None,
        recheck: Sequence[int] = (),
        count_left: bool = False,
    ) -> Step:
        """Record ``results``, re-check the held rows ``recheck``, claim up to ``want``
        rows, commit -> Step. With ``stale_before``, the sender also beats its heartbeat
        and puts back the rows of senders silent since then (``senders.beat``).

        ``recheck`` names rows this run holds (``sending``) and is about to try again
        after a wait (a reconnect backoff): each gets the claim's checks once more, and
        who left meanwhile is marked skipped (``Step.dropped``) instead of written to.
        """
        simple = stale_before is None and not recheck and not any(r.bounce for r in results)
        if self._raw is not None and simple:
            return Step(*self._step_raw(self._raw, results, want, now))
        found: Beat | None = None
        with self._conn.begin():
            cursor = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                self._write_results(cursor, results, now)
                taken, skipped = self._claim(cursor, want, now) if want else ([], 0)
                dropped = self._recheck(cursor, recheck, now) if recheck else frozenset()
            finally:
                cursor.close()
            if stale_before is not None and self.sender is not None:
                sender_id, holder = self.sender
                found = beat(
                    self._conn, self.campaign_id, sender_id, holder, now, stale_before, count_left
                )
        if stale_before is not None:
            self._checkpoint()
        return Step(taken, skipped + len(dropped), dropped, found)

    def _recheck(self, cursor: Any, row_ids: Sequence[int], now: datetime) -> frozenset[int]:
        """Held rows whose reader may no longer receive -> their ids, marked skipped."""
        query = with_reader(
            select(
                deliveries.c.id, subscribers.c.email, subscribers.c.status, memberships.c.status
            ),
            self.list_id,
        ).where(deliveries.c.id.in_(list(row_ids)), deliveries.c.status == SENDING)
        refused = self._refusals(cursor, [tuple(row) for row in self._conn.execute(query)])
        if refused:
            cursor.executemany(
                self._sql.skip.sql,
                [
                    self._sql.skip.params({"row_id": row_id, "row_reply": reason, "row_now": now})
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
        objects), a good part of a small step's cost. Only for steps that run no SQLAlchemy
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
        # in id order, as every writer of these rows locks them
        untried = sorted((r for r in results if r.status == QUEUED), key=lambda r: r.id)
        done = sorted((r for r in results if r.status != QUEUED), key=lambda r: r.id)
        sender = None if self.sender is None else self.sender.id
        if untried:
            cursor.executemany(
                self._sql.hand_back.sql,
                [
                    self._sql.hand_back.params(
                        {"row_id": r.id, "row_sender": sender, "row_now": now}
                    )
                    for r in untried
                ],
            )
        if done:
            cursor.executemany(
                self._sql.record.sql,
                [
                    self._sql.record.params(
                        {
                            "row_id": r.id,
                            "row_status": r.status,
                            "row_code": r.code,
                            "row_enhanced": r.enhanced[:16],
                            "row_reply": r.reply,
                            "row_next": r.next_attempt_at,
                            "row_sent": now if r.status in (SENT, UNKNOWN) else None,
                            "row_sender": sender,
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
            statement = blocked_hashes_statement(len(hashes), self._dialect)
            self._blocked[len(hashes)] = statement
        values = {f"h{i}": digest for i, digest in enumerate(hashes)}
        cursor.execute(statement.sql, statement.params(values))
        return {row[0] for row in cursor.fetchall()}

    def _claim(self, cursor: Any, want: int, now: datetime) -> tuple[list[Claimed], int]:
        taken: list[Claimed] = []
        skipped = 0
        sender = None if self.sender is None else self.sender.id
        sources = [self._sql.queued, self._sql.due]
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
                        self._sql.skip.params(
                            {"row_id": row_id, "row_reply": reason, "row_now": now}
                        )
                    )
                    continue
                marks.append(
                    self._sql.mark.params(
                        {"row_id": row_id, "row_sender": sender, "row_email": email, "row_now": now}
                    )
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
                cursor.executemany(self._sql.mark.sql, marks)
            if skips:
                cursor.executemany(self._sql.skip.sql, skips)
                skipped += len(skips)
        return taken, skipped


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
