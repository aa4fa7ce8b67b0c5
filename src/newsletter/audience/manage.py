"""The single-address subscriber verbs: add, remove, unsubscribe, erase, show and list.

Each takes the store and what the CLI was given and returns the text (or data) to show;
StoreError says what is wrong with the address or list.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import parseaddr
from typing import Any

from newsletter.audience.formats import column_key
from newsletter.errors import StoreError
from newsletter.store import Consent, Store, normalize_address
from newsletter.store.schema import ACTIVE, UNSUBSCRIBED
from newsletter.textsafe import printable


def parse_attributes(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["city=Oslo"]`` -> ``{"city": "Oslo"}``; StoreError for a pair without ``=``."""
    attributes: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not column_key(key):
            raise StoreError(f"attribute {pair!r} is not KEY=VALUE", hint="e.g. --attr city=Oslo")
        attributes[column_key(key)] = value.strip()
    return attributes


def split_display_name(text: str) -> tuple[str, str]:
    """``Zoë Ångström <zoe@example.com>`` -> (name, address); a bare address -> ("", it).

    StoreError when the angle brackets hold no address.
    """
    if "<" not in text:
        return "", text
    name, address = parseaddr(text)
    if not address or "@" not in address:
        raise StoreError(
            f"{text!r} is not an address", hint="write it as ADDRESS or 'Name <ADDRESS>'"
        )
    return name, address


def add_subscriber(
    store: Store,
    email: str,
    *,
    list_name: str,
    name: str = "",
    attributes: dict[str, str] | None = None,
    resubscribe: str | None = None,
) -> str:
    """``newsletter subscribers add`` -> the message to show; StoreError if suppressed.

    ``email`` may be ``Display Name <address>``; that name is used when ``name`` is empty.
    """
    shown_name, email = split_display_name(email)
    outcome = store.add(
        email,
        list_name=list_name,
        consent=Consent(source="cli"),
        name=" ".join((name or shown_name).split()),
        attributes=attributes,
        resubscribe=resubscribe or None,
    )
    address = normalize_address(email)
    if outcome == "suppressed":
        raise StoreError(
            f"{address} {_why_suppressed(store, address, list_name)}; not added to {list_name}",
            hint="only with their new consent: --resubscribe 'how and when they asked'",
        )
    return f"{address}: {outcome} ({list_name})"


def _why_suppressed(store: Store, address: str, list_name: str) -> str:
    """Why ``add`` refused ``address`` -> "bounced", "unsubscribed from main", ...: the
    global status when it is not active, else the list it left; "was erased" without a
    record."""
    sub = store.get_by_email(address)
    if sub is None:
        return "was erased"
    if sub.status != ACTIVE:
        return {UNSUBSCRIBED: "unsubscribed from everything"}.get(sub.status, sub.status)
    left = [m.status for m in sub.memberships if m.list_name == list_name]
    return f"{left[0]} from {list_name}" if left else "unsubscribed"


def _require_subscriber_and_list(store: Store, address: str, list_name: str) -> None:
    if store.get_by_email(address) is None:
        raise StoreError(f"{address} is not a subscriber", hint="check the address")
    if store.list_id(list_name) is None:
        known = ", ".join(store.list_names()) or "none yet"
        raise StoreError(f"no list named {list_name!r}", hint=f"lists: {known}")


def remove_subscriber(store: Store, email: str, *, list_name: str) -> str:
    """``newsletter subscribers remove``: take ``email`` off one list, keeping the record.

    StoreError when the address is unknown, the list does not exist, or the address
    is not on it (nothing is changed then).
    """
    address = normalize_address(email)
    _require_subscriber_and_list(store, address, list_name)
    outcome = store.remove(address, list_name=list_name, consent=Consent(source="cli"))
    if outcome == "not on list":
        sub = store.get_by_email(address)
        on = ", ".join(m.list_name for m in sub.memberships) if sub else ""
        raise StoreError(
            f"{address} is not on {list_name}; nothing changed",
            hint=f"its lists: {on}" if on else "it is on no list",
        )
    if outcome == "already removed":
        return f"{address}: already removed from {list_name}"
    return f"{address}: removed from {list_name}"


def unsubscribe_address(store: Store, email: str, *, list_name: str | None) -> str:
    """``newsletter unsubscribe``: from one list, or (no list) from everything, for good."""
    address = normalize_address(email)
    if list_name is not None:  # from everything works for any address: it blocks it for good
        _require_subscriber_and_list(store, address, list_name)
    known = store.get_by_email(address) is not None
    changed = store.unsubscribe(address, list_name=list_name, consent=Consent(source="cli"))
    if not known:
        return f"{address}: not a subscriber; now blocked, so no import or form can add it"
    where = list_name or "everything"
    return f"{address}: {'unsubscribed from' if changed else 'already unsubscribed from'} {where}"


def erase_address(store: Store, email: str) -> str:
    """``newsletter subscribers erase``: delete personal data, keep the blocking hash."""
    erased = store.erase(email, consent=Consent(source="cli"))
    address = normalize_address(email)
    if erased:
        return (
            f"{address}: personal data erased; the address stays blocked "
            "(only a new sign-up its owner confirms can lift that)"
        )
    return f"{address}: no record held; the address is now blocked"


def describe_address(store: Store, email: str) -> dict[str, Any]:
    """``newsletter subscribers show``: everything held about ``email``, or StoreError."""
    data = store.describe(email)
    if data is None:
        raise StoreError(f"{normalize_address(email)} is not known", hint="check the address")
    return data


def listing(
    store: Store, *, list_name: str | None, status: str | None, limit: int | None
) -> Iterator[str]:
    """``newsletter subscribers list``: one tab-separated line per subscriber.

    Names and list names come from subscribers and imports: their control characters
    (escape sequences, tabs, carriage returns) are dropped so a line shows as it is.
    """
    for shown, sub in enumerate(store.iter_summaries(list_name=list_name, status=status)):
        if limit is not None and shown >= limit:
            return
        lists = ",".join(
            name if list_status == ACTIVE else f"{name}({list_status})"
            for name, list_status in sub.lists.items()
        )
        yield "\t".join(printable(v) for v in (sub.email, sub.effective_status, lists, sub.name))
