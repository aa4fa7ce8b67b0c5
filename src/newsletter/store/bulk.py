"""Apply one batch of import rows inside one transaction, with set-based statements.

The batch is read with three ``IN`` queries (subscribers, suppression hashes,
memberships), decided in Python, then written with executemany statements.
The same path serves ``Store.add`` (a batch of one), so a single add and a
100,000-row import follow the same rules:

- an address that unsubscribed, bounced, complained or was erased is never
  made active again unless ``resubscribe`` carries the new consent;
- a row the file marks as unsubscribed/bounced/complained suppresses the person;
- a membership someone left stays left (counted as suppressed);
- duplicates in a batch are merged: later name and attribute values win, a
  suppression in any of the rows wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from newsletter.errors import StoreError
from newsletter.store.addresses import address_hash
from newsletter.store.bulk_write import WritePlan, execute_plan
from newsletter.store.ops import (
    STRENGTH,
    SUPPRESS_ACTION,
    among,
    consent_row,
    list_ids,
    refuse_unstorable_consents,
    suppression_reasons,
)
from newsletter.store.records import (
    ADDED,
    RESUBSCRIBED,
    SUPPRESSED,
    UNCHANGED,
    UPDATED,
    BatchResult,
    Consent,
    ImportRow,
    surely_storable,
)
from newsletter.store.schema import (
    ACTIVE,
    PENDING,
    UNSUBSCRIBED,
    memberships,
    subscribers,
)

_OUTCOME_ORDER = (RESUBSCRIBED, ADDED, UPDATED, SUPPRESSED, UNCHANGED)


@dataclass
class _Existing:
    id: int
    name: str
    attributes: dict[str, Any]
    status: str


def merge_duplicates(rows: Sequence[ImportRow], result: BatchResult) -> dict[str, ImportRow]:
    """Rows -> one row per address (file order kept); counts the merged extras."""
    merged: dict[str, ImportRow] = {}
    for row in rows:
        first = merged.get(row.email)
        if first is None:
            merged[row.email] = row
            continue
        result.duplicates += 1
        first.name = row.name or first.name
        first.attributes = {**first.attributes, **row.attributes}
        if STRENGTH[row.status] > STRENGTH[first.status]:
            first.status = row.status
        if row.lists is not None:
            combined = dict(first.lists or {})
            for name, status in row.lists.items():
                if combined.get(name) != UNSUBSCRIBED:
                    combined[name] = status
            first.lists = combined
        first.ip = row.ip or first.ip
        first.confirmed_at = row.confirmed_at or first.confirmed_at
        first.detail = {**first.detail, **row.detail}
    return merged


def apply_batch(
    conn: Connection,
    rows: Sequence[ImportRow],
    *,
    default_list: str,
    consent: Consent,
    action: str,
    resubscribe: str | None,
    now: datetime,
    list_cache: dict[str, int],
    checked: bool = False,
) -> BatchResult:
    """Write ``rows`` in the caller's transaction -> what happened to each address.

    ``default_list`` is the list for rows whose ``lists`` is None; ``action`` is
    the consent-trail action for new memberships ("import", "subscribe");
    ``resubscribe`` (the description of fresh consent) lifts suppressions;
    ``checked`` says no row has an ``unstorable_field`` (else StoreError names it).
    """
    if not checked and not surely_storable([row.stored_values() for row in rows]):
        for row in rows:
            refuse_unstorable(row)
    result = BatchResult()
    merged = merge_duplicates(rows, result)
    if not merged:
        return result
    targets = {
        email: row.lists if row.lists is not None else {default_list: ACTIVE}
        for email, row in merged.items()
    }
    ids = list_ids(conn, {name for wanted in targets.values() for name in wanted}, now, list_cache)
    existing = _load_existing(conn, list(merged))
    blocked = suppression_reasons(conn, merged)
    current = _load_memberships(conn, [sub.id for sub in existing.values()], set(ids.values()))
    plan = WritePlan()
    for email, row in merged.items():
        decide = _Decision(plan, row, consent, action, resubscribe, now)
        outcome = decide.run(existing.get(email), blocked.get(email), targets[email], ids, current)
        result.count(email, outcome)
    refuse_unstorable_consents(plan.consents)
    execute_plan(conn, plan, now)
    return result


def refuse_unstorable(row: ImportRow) -> None:
    """StoreError naming the field (and line) of ``row`` that no database would store.

    Checked before any statement, so one bad value never fails a whole batch with a
    driver error that names nothing.
    """
    problem = row.unstorable_field()
    if problem is not None:
        where = f"line {row.line}: " if row.line else ""
        raise StoreError(
            f"{where}{problem[0]} {problem[1]}",
            hint="remove the character from the value and try again",
        )


def _load_existing(conn: Connection, emails: list[str]) -> dict[str, _Existing]:
    found = conn.execute(
        select(
            subscribers.c.email,
            subscribers.c.id,
            subscribers.c.name,
            subscribers.c.attributes,
            subscribers.c.status,
        ).where(among(conn, subscribers.c.email, emails))
    )
    return {
        row.email: _Existing(row.id, row.name, row.attributes or {}, row.status) for row in found
    }


def _load_memberships(
    conn: Connection, subscriber_ids: list[int], list_id_set: set[int]
) -> dict[tuple[int, int], str]:
    if not subscriber_ids:
        return {}
    found = conn.execute(
        select(memberships.c.subscriber_id, memberships.c.list_id, memberships.c.status).where(
            among(conn, memberships.c.subscriber_id, subscriber_ids),
            among(conn, memberships.c.list_id, list_id_set),
        )
    )
    return {(row.subscriber_id, row.list_id): row.status for row in found}


class _Decision:
    """What to do with one merged row; appends statements to the shared plan."""

    def __init__(
        self,
        plan: WritePlan,
        row: ImportRow,
        consent: Consent,
        action: str,
        resubscribe: str | None,
        now: datetime,
    ) -> None:
        self.plan = plan
        self.row = row
        self.consent = consent
        self.action = action
        self.resubscribe = resubscribe
        self.now = now

    def _consent(self, who: int | str, list_id: int | None, action: str) -> None:
        extra: dict[str, Any] = {"line": self.row.line} if self.row.line else {}
        extra.update(self.row.detail)
        if action == "resubscribe":
            extra["resubscribe"] = self.resubscribe
        # checked with the whole batch's consents in one pass (apply_batch)
        row = consent_row(None, list_id, action, self.consent, self.now, extra, check=False)
        if self.row.ip:
            row["ip"] = self.row.ip
        row["_who"] = who
        self.plan.consents.append(row)

    def run(
        self,
        sub: _Existing | None,
        blocked_reason: str | None,
        wanted: dict[str, str],
        ids: dict[str, int],
        current: dict[tuple[int, int], str],
    ) -> str:
        """Plan this row's changes -> its outcome (added, updated, suppressed, ...)."""
        row = self.row
        listed = blocked_reason is not None
        if sub is not None and sub.status != ACTIVE:
            blocked_reason = blocked_reason or sub.status
        if row.status != ACTIVE:
            self._suppress(sub, blocked_reason, listed)
            return SUPPRESSED
        if blocked_reason is not None and self.resubscribe is None:
            return SUPPRESSED
        lifted = blocked_reason is not None
        if lifted:
            self.plan.suppression_deletes.append(address_hash(row.email))
        if sub is None:
            self._insert(wanted, ids, lifted)
            return RESUBSCRIBED if lifted else ADDED
        outcomes = {self._update_details(sub, lifted)}
        for list_name, status in wanted.items():
            outcomes.add(self._membership(sub.id, ids[list_name], status, current))
        return next(outcome for outcome in _OUTCOME_ORDER if outcome in outcomes)

    def _suppress(self, sub: _Existing | None, blocked_reason: str | None, listed: bool) -> None:
        row, plan = self.row, self.plan
        stronger = blocked_reason is None or STRENGTH[row.status] > STRENGTH[blocked_reason]
        if not stronger:
            return
        digest = address_hash(row.email)
        if not listed:
            plan.suppression_inserts.append({"email_hash": digest, "reason": row.status})
        else:
            plan.suppression_updates.append({"b_hash": digest, "b_reason": row.status})
        if sub is not None:
            plan.subscriber_updates[sub.id] = {
                "b_id": sub.id,
                "b_name": sub.name,
                "b_attributes": sub.attributes,
                "b_status": row.status,
            }
            plan.leave_all_lists.append(sub.id)
            self._consent(sub.id, None, SUPPRESS_ACTION[row.status])

    def _insert(self, wanted: dict[str, str], ids: dict[str, int], lifted: bool) -> None:
        row = self.row
        self.plan.new_subscribers[row.email] = {
            "email": row.email,
            "name": row.name,
            "attributes": row.attributes,
            "status": ACTIVE,
            "created_at": self.now,
            "updated_at": self.now,
        }
        for list_name, status in wanted.items():
            self._add_membership(row.email, ids[list_name], status)
            action = "resubscribe" if lifted and status == ACTIVE else self._action_for(status)
            self._consent(row.email, ids[list_name], action)

    def _action_for(self, status: str) -> str:
        return "unsubscribe" if status == UNSUBSCRIBED else self.action

    def _add_membership(self, who: int | str, list_id: int, status: str) -> None:
        self.plan.membership_inserts.append(
            {
                "_who": who,
                "list_id": list_id,
                "status": status,
                "created_at": self.now,
                "updated_at": self.now,
                "confirmed_at": self.row.confirmed_at,
            }
        )

    def _update_details(self, sub: _Existing, lifted: bool) -> str:
        name = self.row.name or sub.name
        attributes = {**sub.attributes, **self.row.attributes}
        if not lifted and name == sub.name and attributes == sub.attributes:
            return UNCHANGED
        self.plan.subscriber_updates[sub.id] = {
            "b_id": sub.id,
            "b_name": name,
            "b_attributes": attributes,
            "b_status": ACTIVE,
        }
        return RESUBSCRIBED if lifted else UPDATED

    def _membership(
        self, subscriber_id: int, list_id: int, wanted: str, current: dict[tuple[int, int], str]
    ) -> str:
        have = current.get((subscriber_id, list_id))
        if have is None:
            self._add_membership(subscriber_id, list_id, wanted)
            self._consent(subscriber_id, list_id, self._action_for(wanted))
            return UPDATED if wanted == UNSUBSCRIBED else ADDED
        if have == wanted or wanted == PENDING:
            return UNCHANGED
        if have == UNSUBSCRIBED:  # they left this list: only fresh consent brings them back
            if self.resubscribe is None:
                return SUPPRESSED
            self._set_membership(subscriber_id, list_id, wanted)
            self._consent(subscriber_id, list_id, "resubscribe")
            return RESUBSCRIBED
        self._set_membership(subscriber_id, list_id, wanted)
        self._consent(subscriber_id, list_id, self._action_for(wanted))
        return UPDATED

    def _set_membership(self, subscriber_id: int, list_id: int, status: str) -> None:
        self.plan.membership_updates.append(
            {
                "b_sid": subscriber_id,
                "b_lid": list_id,
                "b_status": status,
                "b_confirmed": self.row.confirmed_at,
            }
        )
