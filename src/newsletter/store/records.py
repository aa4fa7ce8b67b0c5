"""The plain values the store hands in and out: no SQL here.

``Consent``     how a change was asked for (source, IP, user agent, text shown).
``Subscriber``  one person with their list memberships.
``Recipient``   one person to write to: id, email, name, attributes (list id when known).
``ImportRow``   one normalised row of an import file, ready for ``Store.import_batch``.
``BatchResult`` what one batch did: added / updated / unchanged / suppressed / ...
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from newsletter.store.schema import ACTIVE, PENDING, UNSUBSCRIBED

# Outcomes of one row, strongest first when a row touches several lists.
ADDED = "added"
RESUBSCRIBED = "resubscribed"
UPDATED = "updated"
SUPPRESSED = "suppressed"
UNCHANGED = "unchanged"


def unstorable(value: Any) -> str | None:
    """Why no database would store ``value`` (a NUL, or text not encodable as UTF-8), else None.

    Looks inside dicts and lists too (attributes, details). PostgreSQL refuses both in
    text columns, SQLite the second; checking first lets the caller name the field.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character"
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "contains characters that are not valid text"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            reason = unstorable(key) or unstorable(item)
            if reason:
                return reason
    elif isinstance(value, list | tuple):
        for item in value:
            reason = unstorable(item)
            if reason:
                return reason
    return None


# One encoder for every check: building one per call costs more than the encoding.
_CHECK_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, check_circular=False)


def surely_storable(fields: Any) -> bool:
    """True when one C-encoded JSON pass shows no NUL and no unencodable text in ``fields``
    (any mix of dicts, lists and scalars; a whole batch at once is cheapest).

    False only means "look closer": the JSON escape of a NUL may also be literal text.
    """
    try:
        # JSON writes a NUL as an escape and keeps a lone surrogate, so one string shows both
        text = _CHECK_ENCODER.encode(fields)
    except (TypeError, ValueError, RecursionError):
        return False
    if "\\u0000" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_unstorable(fields: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field name, reason) of the first of ``fields`` a database would refuse, else None."""
    # imports check every row several times: one C pass answers the common, clean case
    if surely_storable(fields):
        return None
    for name, value in fields.items():
        reason = unstorable(value)
        if reason:
            return name, reason
    return None


def effective_status(status: str, list_statuses: Iterable[str]) -> str:
    """What a person is, from the global ``status`` and their per-list statuses.

    A global suppression wins; otherwise active on any list -> active, else waiting for
    a confirmation anywhere -> pending, else (left every list, or on none) ->
    unsubscribed. ``Store`` filters with the same rule in SQL.
    """
    if status != ACTIVE:
        return status
    seen = set(list_statuses)
    if ACTIVE in seen:
        return ACTIVE
    return PENDING if PENDING in seen else UNSUBSCRIBED


def utcnow() -> datetime:
    """Now, timezone-aware UTC: the only clock the store uses."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Consent:
    """How and where a subscription change was asked for.

    ``source`` is one of import, web, cli, api, mail; ``text`` is the consent
    wording shown to the person and ``version`` its version label; ``detail``
    is free-form context (file and line of an import, a reason for
    resubscribing). Stored with every change in the ``consents`` table.
    """

    source: str
    ip: str | None = None
    user_agent: str | None = None
    text: str | None = None
    version: str | None = None
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Membership:
    """One list a subscriber is on, with its per-list status."""

    list_id: int
    list_name: str
    status: str
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None


@dataclass(frozen=True)
class Subscriber:
    """One person: global ``status`` overrides every membership when not active.

    ``status`` is the stored global status; ``effective_status`` is what to show.
    """

    id: int
    email: str
    name: str
    attributes: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime
    memberships: tuple[Membership, ...] = ()

    @property
    def effective_status(self) -> str:
        """Global status, or what the memberships add up to (see ``effective_status``)."""
        return effective_status(self.status, (m.status for m in self.memberships))

    def list_status(self, list_name: str) -> str | None:
        """Effective status on ``list_name``: the global status if suppressed, else the list's."""
        for membership in self.memberships:
            if membership.list_name == list_name:
                return self.status if self.status != ACTIVE else membership.status
        return None


@dataclass(frozen=True, slots=True)
class SubscriberSummary:
    """A subscriber as export and listing need them: ``lists`` maps list name -> status.

    ``status`` is the stored global status (what an export carries); listings show
    ``effective_status``.
    """

    id: int
    email: str
    name: str
    attributes: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime
    lists: dict[str, str]

    @property
    def effective_status(self) -> str:
        """Global status, or what the list statuses add up to (see ``effective_status``)."""
        return effective_status(self.status, self.lists.values())


@dataclass(frozen=True)
class Recipient:
    """One person a message is written to, as the store hands them to the sender.

    ``id`` is the subscriber id (0 for a test send), ``attributes`` fill the ``attr.KEY``
    slots, ``list_id`` is the list they were found on (None when not read from a list).
    """

    id: int
    email: str
    name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    list_id: int | None = None


@dataclass
class ImportRow:
    """One row to import; ``email`` is already normalised.

    ``status`` is what the source says about the person globally (active, or
    unsubscribed / bounced / complained for a file of people who left).
    ``lists`` maps list name -> active | pending | unsubscribed when the file
    itself says which lists (our own export); None means "the import's list".
    ``detail`` holds what the file told about consent (opt-in time, ...).
    """

    email: str
    line: int = 0
    name: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = ACTIVE
    lists: dict[str, str] | None = None
    ip: str | None = None
    confirmed_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def stored_values(self) -> tuple[Any, ...]:
        """The values of this row a database stores, for ``surely_storable`` over a batch."""
        return (self.email, self.name, self.ip, self.attributes, self.lists, self.detail)

    def unstorable_field(self) -> tuple[str, str] | None:
        """(field, reason) when a value of this row cannot be stored (see ``unstorable``)."""
        if surely_storable(self.stored_values()):
            return None
        fields: dict[str, Any] = {"email": self.email, "name": self.name, "ip": self.ip}
        fields.update(
            (f"attribute {key!r}", {key: value}) for key, value in self.attributes.items()
        )
        fields["lists"] = self.lists
        fields.update(self.detail)
        return first_unstorable(fields)


@dataclass
class BatchResult:
    """Counts of what an import (or one batch of it) did, row by row.

    ``added``: new on the list; ``updated``: name, attributes or list status
    changed; ``unchanged``; ``suppressed``: left alone because the person
    unsubscribed, bounced or complained (or the file says so);
    ``resubscribed``: suppression lifted by an explicit ``--resubscribe``;
    ``duplicates``: extra rows for an address already in the same batch, merged.
    """

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0
    resubscribed: int = 0
    duplicates: int = 0
    outcomes: dict[str, str] = field(default_factory=dict, repr=False)

    def count(self, email: str, outcome: str) -> None:
        """Record ``outcome`` for ``email``."""
        self.outcomes[email] = outcome
        setattr(self, outcome, getattr(self, outcome) + 1)

    def merge(self, other: BatchResult) -> None:
        """Add ``other``'s counts to these (per-address outcomes are not kept)."""
        for item in fields(self):
            if item.name != "outcomes":
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))
