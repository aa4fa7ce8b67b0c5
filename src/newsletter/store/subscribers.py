"""``Store``: the subscriber API the rest of the project calls.

Every method that changes something runs in one write transaction and has
committed before it returns. Addresses are normalised on the way in
(``addresses.normalize_address``); an unusable one raises ``AddressError``.

Who may be mailed: ``iter_recipients`` / ``is_sendable`` / ``sendable_ids``
return only members whose list status is active (pending double opt-in
members are never included) and whose global status is active and whose
address is not on the suppression list.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from newsletter.errors import StoreError
from newsletter.store.addresses import address_hash, normalize_address
from newsletter.store.bulk import apply_batch, refuse_unstorable
from newsletter.store.ops import (
    SUPPRESS_ACTION,
    add_suppression,
    consent_row,
    find_list_id,
    lift_suppression,
    list_ids,
    record_consents,
    suppress_subscriber,
)
from newsletter.store.records import (
    BatchResult,
    Consent,
    ImportRow,
    Membership,
    Recipient,
    Subscriber,
    SubscriberSummary,
    utcnow,
)
from newsletter.store.schema import (
    ACTIVE,
    BOUNCED,
    COMPLAINED,
    ERASED,
    MEMBERSHIP_STATUSES,
    PENDING,
    SUBSCRIBER_STATUSES,
    UNSUBSCRIBED,
    consents,
    lists,
    memberships,
    subscribers,
    suppressions,
)

log = logging.getLogger(__name__)

WRITE_OPTION = "newsletter_write"

# Called inside erase()'s transaction with (connection, subscriber id): modules that keep
# their own copy of personal data (deliveries, ...) register a scrubber here.
ERASE_HOOKS: list[Callable[[Connection, int], None]] = []

# Called inside describe()'s read with (connection, subscriber id) -> (key, JSON-ready
# value): the same modules add what they hold to the data-subject export.
DESCRIBE_HOOKS: list[Callable[[Connection, int], tuple[str, Any]]] = []


@dataclass(frozen=True)
class PendingResult:
    """What ``add_pending`` left: the ids for a confirm link and the membership status."""

    subscriber_id: int
    list_id: int
    status: str


P = ParamSpec("P")
T = TypeVar("T")
_ATTEMPTS = 3


def _retry_conflicts(method: Callable[P, T]) -> Callable[P, T]:
    """Run a write transaction again when a concurrent writer won a race on a unique key.

    On PostgreSQL two imports (or a web subscribe and an import) may insert the
    same new address or list at once; the loser's transaction rolls back whole
    and simply runs again, now seeing the winner's row. SQLite never races here
    (``BEGIN IMMEDIATE``), so a constraint failure there is real and raised at once.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        store = args[0]
        assert isinstance(store, Store)
        attempts = 1 if store.engine.dialect.name == "sqlite" else _ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return method(*args, **kwargs)
            except IntegrityError:
                if attempt == attempts:
                    raise
                log.info("write conflict with another writer, retrying (%d)", attempt)
        raise AssertionError("unreachable")

    return wrapper


class Store:
    """The subscriber database behind one SQLAlchemy engine (see ``open_store``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._list_cache: dict[str, int] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed when the block ends."""
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _write_with_lists(self) -> Iterator[tuple[Connection, dict[str, int]]]:
        """A write transaction plus a copy of the list-id cache, kept only if it commits.

        A list created in a transaction that rolls back must not stay cached:
        its id would point at nothing (or at a later, different list).
        """
        cache = dict(self._list_cache)
        with self.write() as conn:
            yield conn, cache
        self._list_cache.update(cache)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection; its snapshot ends when the block ends."""
        with self.engine.connect() as conn:
            yield conn

    # -- lists ------------------------------------------------------------------------------

    @_retry_conflicts
    def ensure_list(self, name: str) -> int:
        """Id of list ``name``, created if needed."""
        with self._write_with_lists() as (conn, cache):
            list_id = list_ids(conn, [name], utcnow(), cache)[name.strip()]
        return list_id

    def list_id(self, name: str) -> int | None:
        """Id of list ``name``, or None if there is no such list."""
        with self.read() as conn:
            return find_list_id(conn, name)

    def list_name(self, list_id: int) -> str | None:
        """Name of the list with ``list_id``, or None."""
        with self.read() as conn:
            return conn.scalar(select(lists.c.name).where(lists.c.id == list_id))

    def list_names(self) -> list[str]:
        """Every list name, alphabetically."""
        with self.read() as conn:
            return list(conn.scalars(select(lists.c.name).order_by(lists.c.name)))

    def _require_list(self, conn: Connection, name: str) -> int:
        list_id = find_list_id(conn, name)
        if list_id is None:
            raise StoreError(
                f"no list named {name!r}",
                hint="import or add subscribers with --list to create it",
            )
        return list_id

    # -- reading one subscriber -------------------------------------------------------------

    def get(self, subscriber_id: int) -> Subscriber | None:
        """The subscriber with ``subscriber_id`` and their memberships, or None (also if erased)."""
        with self.read() as conn:
            return self._load(conn, subscribers.c.id == subscriber_id)

    def get_by_email(self, email: str) -> Subscriber | None:
        """The subscriber with address ``email`` (any case), or None."""
        normalized = normalize_address(email)
        with self.read() as conn:
            return self._load(conn, subscribers.c.email == normalized)

    def _load(self, conn: Connection, condition: Any) -> Subscriber | None:
        row = conn.execute(
            select(subscribers).where(condition, subscribers.c.status != ERASED)
        ).first()
        if row is None:
            return None
        return _subscriber(row, _memberships_of(conn, [row.id]).get(row.id, ()))

    # -- subscribing ------------------------------------------------------------------------

    def add(
        self,
        email: str,
        *,
        list_name: str,
        consent: Consent,
        name: str = "",
        attributes: dict[str, Any] | None = None,
        resubscribe: str | None = None,
    ) -> str:
        """Subscribe ``email`` to ``list_name`` at once (single opt-in) -> the outcome.

        Outcome: "added", "updated", "unchanged", "resubscribed", or "suppressed"
        when the person left before and ``resubscribe`` (how they consented
        again) is not given.
        """
        row = ImportRow(
            email=normalize_address(email), name=" ".join(name.split()), attributes=attributes or {}
        )
        result = self.import_batch(
            [row], list_name=list_name, consent=consent, action="subscribe", resubscribe=resubscribe
        )
        return result.outcomes[row.email]

    @_retry_conflicts
    def import_batch(
        self,
        rows: Sequence[ImportRow],
        *,
        list_name: str,
        consent: Consent,
        action: str = "import",
        resubscribe: str | None = None,
    ) -> BatchResult:
        """Apply ``rows`` in ONE transaction -> counts; nothing of it is kept if it fails."""
        with self._write_with_lists() as (conn, cache):
            result = apply_batch(
                conn,
                rows,
                default_list=list_name,
                consent=consent,
                action=action,
                resubscribe=resubscribe,
                now=utcnow(),
                list_cache=cache,
            )
        return result

    @_retry_conflicts
    def add_pending(
        self,
        email: str,
        *,
        list_name: str,
        consent: Consent,
        name: str = "",
        attributes: dict[str, Any] | None = None,
    ) -> PendingResult:
        """Record a double opt-in request: membership "pending" until ``confirm``.

        A new address gets a subscriber row (``name``/``attributes`` are only used
        then: an unconfirmed request never changes a known person's data). An
        active member stays active; a member who left (this list, or everything at
        once) becomes pending again, so confirming the new request brings them back.
        Pending members never receive campaigns.
        """
        normalized = normalize_address(email)
        refuse_unstorable(ImportRow(normalized, name=name, attributes=attributes or {}))
        now = utcnow()
        with self._write_with_lists() as (conn, cache):
            list_id = list_ids(conn, [list_name], now, cache)[list_name.strip()]
            subscriber_id = conn.scalar(
                select(subscribers.c.id).where(subscribers.c.email == normalized)
            )
            if subscriber_id is None:
                reason = conn.scalar(
                    select(suppressions.c.reason).where(
                        suppressions.c.email_hash == address_hash(normalized)
                    )
                )
                subscriber_id = conn.execute(
                    insert(subscribers)
                    .values(
                        email=normalized,
                        name=name.strip(),
                        attributes=attributes or {},
                        status=ACTIVE if reason in (None, ERASED) else reason,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(subscribers.c.id)
                ).scalar_one()
            status = conn.scalar(
                select(memberships.c.status)
                .where(
                    memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id
                )
                .with_for_update()
            )
            if status == ACTIVE and self._globally_active(conn, subscriber_id, normalized):
                return PendingResult(subscriber_id, list_id, ACTIVE)
            if status is None:
                conn.execute(
                    insert(memberships).values(
                        subscriber_id=subscriber_id,
                        list_id=list_id,
                        status=PENDING,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:  # pending again (renews the expiry clock) or back from unsubscribed
                self._set_membership(conn, subscriber_id, list_id, PENDING, now)
            record_consents(conn, [consent_row(subscriber_id, list_id, "subscribe", consent, now)])
            return PendingResult(subscriber_id, list_id, PENDING)

    @staticmethod
    def _globally_active(conn: Connection, subscriber_id: int, normalized: str) -> bool:
        """Whether nothing global (status or suppression entry) blocks ``subscriber_id``."""
        status = conn.scalar(select(subscribers.c.status).where(subscribers.c.id == subscriber_id))
        blocked = conn.scalar(
            select(suppressions.c.reason).where(
                suppressions.c.email_hash == address_hash(normalized)
            )
        )
        return status == ACTIVE and blocked is None

    @_retry_conflicts
    def confirm(self, subscriber_id: int, list_name: str, *, consent: Consent) -> bool:
        """Turn a pending membership active (double opt-in confirmed) -> True if it changed.

        The confirmation is fresh, verified consent, so it also lifts an earlier
        global suppression of the address. Anything but "pending" is left alone.
        """
        now = utcnow()
        with self.write() as conn:
            list_id = find_list_id(conn, list_name)
            if list_id is None:
                return False
            row = conn.execute(
                select(subscribers.c.email, subscribers.c.status, memberships.c.status)
                .join(memberships, memberships.c.subscriber_id == subscribers.c.id)
                .where(subscribers.c.id == subscriber_id, memberships.c.list_id == list_id)
                .with_for_update()
            ).first()
            if row is None or row[2] != PENDING or row[0] is None:
                return False
            email, global_status = row[0], row[1]
            extra: dict[str, Any] = {}
            if global_status != ACTIVE:
                extra["lifted_suppression"] = global_status
                conn.execute(
                    update(subscribers)
                    .where(subscribers.c.id == subscriber_id)
                    .values(status=ACTIVE, updated_at=now)
                )
            lift_suppression(conn, email)
            self._set_membership(conn, subscriber_id, list_id, ACTIVE, now, confirmed=True)
            record_consents(
                conn, [consent_row(subscriber_id, list_id, "confirm", consent, now, extra)]
            )
            return True

    def expire_pending(self, older_than: datetime) -> int:
        """Forget double opt-in requests not confirmed since ``older_than`` -> how many.

        The pending memberships go; a subscriber left with no membership at all
        (someone who only ever asked and never confirmed) goes with their
        consent records, since nobody consented to keeping them.
        """
        with self.write() as conn:
            stale = select(memberships.c.subscriber_id).where(
                memberships.c.status == PENDING, memberships.c.updated_at < older_than
            )
            subscriber_ids = list(conn.scalars(stale))
            if not subscriber_ids:
                return 0
            removed = conn.execute(
                delete(memberships).where(
                    memberships.c.status == PENDING, memberships.c.updated_at < older_than
                )
            ).rowcount
            orphans = select(subscribers.c.id).where(
                subscribers.c.id.in_(subscriber_ids),
                ~exists().where(memberships.c.subscriber_id == subscribers.c.id),
            )
            orphan_ids = list(conn.scalars(orphans))
            if orphan_ids:
                conn.execute(delete(consents).where(consents.c.subscriber_id.in_(orphan_ids)))
                conn.execute(delete(subscribers).where(subscribers.c.id.in_(orphan_ids)))
            return int(removed)

    # -- leaving ----------------------------------------------------------------------------

    @_retry_conflicts
    def unsubscribe(
        self,
        who: int | str,
        *,
        consent: Consent,
        list_name: str | None = None,
        action: str = "unsubscribe",
    ) -> bool:
        """Unsubscribe ``who`` (id or address) from ``list_name``, or from everything.

        From everything (no list) puts the address on the suppression list, even
        an address we never had, so no later import can add it. Repeating it
        changes nothing and records nothing. Returns True if anything changed.
        """
        now = utcnow()
        with self.write() as conn:
            subscriber_id, email = self._resolve(conn, who)
            if list_name is None:
                if subscriber_id is None:
                    return email is not None and add_suppression(conn, email, UNSUBSCRIBED, now)
                assert email is not None
                changed = suppress_subscriber(conn, subscriber_id, email, UNSUBSCRIBED, now)
                list_id = None
            else:
                list_id = find_list_id(conn, list_name)
                if subscriber_id is None or list_id is None:
                    return False
                changed = self._leave_list(conn, subscriber_id, list_id, now)
            if changed:
                record_consents(conn, [consent_row(subscriber_id, list_id, action, consent, now)])
            return changed

    @_retry_conflicts
    def remove(self, email: str, *, list_name: str, consent: Consent) -> str:
        """Take ``email`` off ``list_name`` (an operator's removal) -> what happened.

        "removed", "already removed" (left before), or "not on list": someone who was
        never on the list gets no membership, unlike ``unsubscribe`` which records the
        person's own wish. Raises StoreError for an unknown address or list.
        """
        now = utcnow()
        with self.write() as conn:
            subscriber_id, normalized = self._resolve(conn, email)
            if subscriber_id is None:
                raise StoreError(f"{normalized} is not a subscriber", hint="check the address")
            list_id = self._require_list(conn, list_name)
            status = conn.scalar(
                select(memberships.c.status)
                .where(
                    memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id
                )
                .with_for_update()
            )
            if status is None:
                return "not on list"
            if status == UNSUBSCRIBED:
                return "already removed"
            self._set_membership(conn, subscriber_id, list_id, UNSUBSCRIBED, now)
            record_consents(conn, [consent_row(subscriber_id, list_id, "remove", consent, now)])
            return "removed"

    def mark_bounced(self, who: int | str, *, consent: Consent | None = None) -> bool:
        """A hard bounce (or soft bounces past the limit): suppress ``who`` everywhere."""
        return self._suppress(who, BOUNCED, consent or Consent(source="mail"))

    def mark_complained(self, who: int | str, *, consent: Consent | None = None) -> bool:
        """A spam complaint (ARF report): suppress ``who`` everywhere."""
        return self._suppress(who, COMPLAINED, consent or Consent(source="mail"))

    @_retry_conflicts
    def _suppress(self, who: int | str, reason: str, consent: Consent) -> bool:
        now = utcnow()
        with self.write() as conn:
            subscriber_id, email = self._resolve(conn, who)
            if email is None:
                return False
            if subscriber_id is None:
                return add_suppression(conn, email, reason, now)
            changed = suppress_subscriber(conn, subscriber_id, email, reason, now)
            if changed:
                action = SUPPRESS_ACTION[reason]
                record_consents(conn, [consent_row(subscriber_id, None, action, consent, now)])
            return changed

    def _leave_list(
        self, conn: Connection, subscriber_id: int, list_id: int, now: datetime
    ) -> bool:
        status = conn.scalar(
            select(memberships.c.status)
            .where(memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id)
            .with_for_update()
        )
        if status == UNSUBSCRIBED:
            return False
        if status is None:  # never on it: remember the wish so an import cannot add them
            conn.execute(
                insert(memberships).values(
                    subscriber_id=subscriber_id,
                    list_id=list_id,
                    status=UNSUBSCRIBED,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            self._set_membership(conn, subscriber_id, list_id, UNSUBSCRIBED, now)
        return True

    @staticmethod
    def _set_membership(
        conn: Connection,
        subscriber_id: int,
        list_id: int,
        status: str,
        now: datetime,
        *,
        confirmed: bool = False,
    ) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if confirmed:
            values["confirmed_at"] = now
        conn.execute(
            update(memberships)
            .where(memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id)
            .values(**values)
        )

    @staticmethod
    def _resolve(conn: Connection, who: int | str) -> tuple[int | None, str | None]:
        """Id or address -> (subscriber id or None, normalised address or None)."""
        if isinstance(who, int):
            email = conn.scalar(select(subscribers.c.email).where(subscribers.c.id == who))
            return (who, email) if email is not None else (None, None)
        normalized = normalize_address(who)
        subscriber_id = conn.scalar(
            select(subscribers.c.id).where(subscribers.c.email == normalized)
        )
        return subscriber_id, normalized

    # -- the send-time checks ---------------------------------------------------------------

    def is_suppressed(self, email: str) -> bool:
        """True if ``email`` unsubscribed from everything, bounced, complained or was erased."""
        digest = address_hash(normalize_address(email))
        with self.read() as conn:
            found = conn.scalar(
                select(suppressions.c.reason).where(suppressions.c.email_hash == digest)
            )
        return found is not None

    def is_sendable(self, subscriber_id: int, list_name: str) -> bool:
        """May a campaign for ``list_name`` go to ``subscriber_id`` right now?"""
        return subscriber_id in self.sendable_ids([subscriber_id], list_name)

    def sendable_ids(self, subscriber_ids: Collection[int], list_name: str) -> set[int]:
        """Those of ``subscriber_ids`` that may receive a campaign for ``list_name`` now.

        One query per call: the sender checks a whole batch just before sending it.
        """
        if not subscriber_ids:
            return set()
        with self.read() as conn:
            list_id = find_list_id(conn, list_name)
            if list_id is None:
                return set()
            found = conn.execute(
                _sendable(list_id).where(subscribers.c.id.in_(list(subscriber_ids)))
            ).all()
            suppressed = _suppressed_hashes(conn, [row.email for row in found])
        return {row.id for row in found if address_hash(row.email) not in suppressed}

    def iter_recipients(
        self, list_name: str, *, batch_size: int = 1000, after_id: int = 0
    ) -> Iterator[Recipient]:
        """Stream the sendable members of ``list_name`` in id order, from ``after_id`` on.

        Each batch is a fresh short query (keyset paging), so no transaction is
        held open during a long send and an unsubscribe between batches is seen.
        Raises StoreError if the list does not exist.
        """
        with self.read() as conn:
            list_id = self._require_list(conn, list_name)
        last = after_id
        while True:
            with self.read() as conn:
                query = (
                    _sendable(list_id)
                    .where(memberships.c.subscriber_id > last)
                    .order_by(memberships.c.subscriber_id)
                    .limit(batch_size)
                )
                rows = conn.execute(query).all()
                suppressed = _suppressed_hashes(conn, [row.email for row in rows])
            for row in rows:
                if address_hash(row.email) not in suppressed:
                    yield Recipient(row.id, row.email, row.name, row.attributes or {}, list_id)
            if len(rows) < batch_size:
                return
            last = rows[-1].id

    # -- counting and exporting -------------------------------------------------------------

    def count(self, *, list_name: str | None = None, status: str | None = None) -> int:
        """How many subscribers (on ``list_name``, with effective ``status``); erased excluded."""
        with self.read() as conn:
            query = self._filtered(conn, list_name, status)
            return int(conn.scalar(select(func.count()).select_from(query.subquery())) or 0)

    def iter_subscribers(
        self,
        *,
        list_name: str | None = None,
        status: str | None = None,
        batch_size: int = 2000,
    ) -> Iterator[Subscriber]:
        """Stream subscribers (filtered like ``count``) with their memberships, in id order."""
        last = 0
        while True:
            with self.read() as conn:
                query = (
                    self._filtered(conn, list_name, status)
                    .where(subscribers.c.id > last)
                    .order_by(subscribers.c.id)
                    .limit(batch_size)
                )
                rows = conn.execute(query).all()
                member_of = _memberships_of(conn, [row.id for row in rows])
            for row in rows:
                yield _subscriber(row, member_of.get(row.id, ()))
            if len(rows) < batch_size:
                return
            last = rows[-1].id

    def _list_names(self, conn: Connection) -> dict[int, str]:
        return {list_id: name for list_id, name in conn.execute(select(lists.c.id, lists.c.name))}

    def iter_summaries(
        self,
        *,
        list_name: str | None = None,
        status: str | None = None,
        batch_size: int = 5000,
    ) -> Iterator[SubscriberSummary]:
        """Stream subscribers like ``iter_subscribers``, lighter: list name -> status only.

        What export and listing need for a million rows: one keyset query per
        batch plus one for its memberships, no per-membership timestamps.
        """
        last = 0
        names: dict[int, str] = {}
        while True:
            with self.read() as conn:
                if not names:
                    names = self._list_names(conn)
                query = (
                    self._filtered(conn, list_name, status)
                    .where(subscribers.c.id > last)
                    .order_by(subscribers.c.id)
                    .limit(batch_size)
                )
                rows = conn.execute(query).all()
                member_of: dict[int, dict[str, str]] = {}
                if rows:
                    # an id range, not IN (thousands of ids): the primary key answers it
                    found = conn.execute(
                        select(
                            memberships.c.subscriber_id, memberships.c.list_id, memberships.c.status
                        ).where(memberships.c.subscriber_id.between(rows[0][0], rows[-1][0]))
                    )
                    for subscriber_id, list_id, list_status in found.all():
                        if list_id not in names:  # a list created since the first batch
                            names = self._list_names(conn)
                        member_of.setdefault(subscriber_id, {})[names[list_id]] = list_status
            # positional unpacking: select(subscribers) yields the columns in table order
            for sid, email, name, attributes, state, created, updated in rows:
                on = member_of.get(sid, {})
                yield SubscriberSummary(
                    sid,
                    email,
                    name,
                    attributes or {},
                    state,
                    created,
                    updated,
                    dict(sorted(on.items())) if len(on) > 1 else on,
                )
            if len(rows) < batch_size:
                return
            last = rows[-1][0]

    def _filtered(self, conn: Connection, list_name: str | None, status: str | None) -> Select[Any]:
        query = select(subscribers).where(subscribers.c.status != ERASED)
        if list_name is None:
            if status is not None:
                _check_status(status, (*SUBSCRIBER_STATUSES, PENDING))
                query = query.where(_effective_status() == status)
            return query
        list_id = self._require_list(conn, list_name)
        query = query.join(
            memberships,
            and_(memberships.c.subscriber_id == subscribers.c.id, memberships.c.list_id == list_id),
        )
        if status is not None:
            _check_status(status, (*SUBSCRIBER_STATUSES, *MEMBERSHIP_STATUSES))
            effective = case(
                (subscribers.c.status != ACTIVE, subscribers.c.status), else_=memberships.c.status
            )
            query = query.where(effective == status)
        return query

    def describe(self, email: str) -> dict[str, Any] | None:
        """Everything held about ``email`` as JSON-ready data (data-subject export), or None.

        An erased or never-known but suppressed address yields only its
        suppression entry: the hash is all that is kept.
        """
        normalized = normalize_address(email)
        with self.read() as conn:
            suppression = conn.execute(
                select(suppressions.c.reason, suppressions.c.at).where(
                    suppressions.c.email_hash == address_hash(normalized)
                )
            ).first()
            sub = self._load(conn, subscribers.c.email == normalized)
            history = [] if sub is None else _consent_history(conn, sub.id)
            held = [] if sub is None else [hook(conn, sub.id) for hook in DESCRIBE_HOOKS]
        if sub is None and suppression is None:
            return None
        data: dict[str, Any] = {"email": normalized}
        if sub is not None:
            data.update(_subscriber_data(sub))
            data["consents"] = history
            data.update(held)
        else:
            data["note"] = "no personal data held; only the address hash is kept to block it"
        data["suppression"] = (
            None
            if suppression is None
            else {"reason": suppression.reason, "at": suppression.at.isoformat()}
        )
        return data

    # -- erasure ----------------------------------------------------------------------------

    @_retry_conflicts
    def erase(self, email: str, *, consent: Consent) -> bool:
        """Erase ``email``'s personal data, keeping only its hash on the suppression list.

        The subscriber row stays as an anonymous tombstone (status "erased", no
        address, name or attributes) so ids other tables refer to stay valid;
        memberships and the consent trail go, replaced by one "erase" record
        without IP or user agent. ``ERASE_HOOKS`` scrub other modules' copies.
        Returns True if a subscriber record was erased (the address is blocked
        either way).
        """
        normalized = normalize_address(email)
        now = utcnow()
        with self.write() as conn:
            add_suppression(conn, normalized, ERASED, now)
            subscriber_id = conn.scalar(
                select(subscribers.c.id).where(subscribers.c.email == normalized)
            )
            if subscriber_id is None:
                return False
            for hook in ERASE_HOOKS:
                hook(conn, subscriber_id)
            conn.execute(delete(memberships).where(memberships.c.subscriber_id == subscriber_id))
            conn.execute(delete(consents).where(consents.c.subscriber_id == subscriber_id))
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(email=None, name="", attributes={}, status=ERASED, updated_at=now)
            )
            anonymous = Consent(source=consent.source)
            record_consents(conn, [consent_row(subscriber_id, None, "erase", anonymous, now)])
            return True


def _check_status(status: str, allowed: tuple[str, ...]) -> None:
    if status not in allowed:
        raise StoreError(
            f"unknown status {status!r}",
            hint="use one of " + ", ".join(s for s in dict.fromkeys(allowed) if s != ERASED),
        )


def _effective_status() -> ColumnElement[str]:
    """``records.effective_status`` in SQL: a suppression, else what the lists add up to."""

    def on_a_list_as(status: str) -> ColumnElement[bool]:
        return exists().where(
            memberships.c.subscriber_id == subscribers.c.id, memberships.c.status == status
        )

    return case(
        (subscribers.c.status != ACTIVE, subscribers.c.status),
        (on_a_list_as(ACTIVE), ACTIVE),
        (on_a_list_as(PENDING), PENDING),
        else_=UNSUBSCRIBED,
    )


def _sendable(list_id: int) -> Select[Any]:
    """Members of ``list_id`` whose membership and global status are both active."""
    return (
        select(
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.name,
            subscribers.c.attributes,
        )
        .join(memberships, memberships.c.subscriber_id == subscribers.c.id)
        .where(
            memberships.c.list_id == list_id,
            memberships.c.status == ACTIVE,
            subscribers.c.status == ACTIVE,
            subscribers.c.email.is_not(None),
        )
    )


def _suppressed_hashes(conn: Connection, emails: list[str]) -> set[str]:
    """The hashes among ``emails`` on the suppression list (belt and braces at send time)."""
    if not emails:
        return set()
    digests = [address_hash(email) for email in emails]
    found = conn.scalars(
        select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(digests))
    )
    return set(found)


def _memberships_of(conn: Connection, ids: list[int]) -> dict[int, tuple[Membership, ...]]:
    if not ids:
        return {}
    found = conn.execute(
        select(memberships, lists.c.name.label("list_name"))
        .join(lists, lists.c.id == memberships.c.list_id)
        .where(memberships.c.subscriber_id.in_(ids))
        .order_by(memberships.c.subscriber_id, lists.c.name)
    )
    out: dict[int, list[Membership]] = {}
    for row in found:
        out.setdefault(row.subscriber_id, []).append(
            Membership(
                row.list_id,
                row.list_name,
                row.status,
                row.created_at,
                row.updated_at,
                row.confirmed_at,
            )
        )
    return {key: tuple(value) for key, value in out.items()}


def _subscriber(row: Any, member_of: tuple[Membership, ...]) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        attributes=row.attributes or {},
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        memberships=member_of,
    )


def iso(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 text (None stays None), for JSON exports."""
    return None if value is None else value.isoformat()


def _subscriber_data(sub: Subscriber) -> dict[str, Any]:
    return {
        "id": sub.id,
        "name": sub.name,
        "attributes": sub.attributes,
        "status": sub.effective_status,
        "created_at": iso(sub.created_at),
        "updated_at": iso(sub.updated_at),
        "lists": [
            {
                "list": m.list_name,
                "status": m.status,
                "created_at": iso(m.created_at),
                "updated_at": iso(m.updated_at),
                "confirmed_at": iso(m.confirmed_at),
            }
            for m in sub.memberships
        ],
    }


def _consent_history(conn: Connection, subscriber_id: int) -> list[dict[str, Any]]:
    found = conn.execute(
        select(consents, lists.c.name.label("list_name"))
        .outerjoin(lists, lists.c.id == consents.c.list_id)
        .where(consents.c.subscriber_id == subscriber_id)
        .order_by(consents.c.id)
    )
    return [
        {
            "at": iso(row.at),
            "action": row.action,
            "list": row.list_name,
            "source": row.source,
            "ip": row.ip,
            "user_agent": row.user_agent,
            "consent_text": row.consent_text,
            "consent_version": row.consent_version,
            "detail": row.detail,
        }
        for row in found
    ]
