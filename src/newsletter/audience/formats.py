"""The subscriber file formats import reads, and the spreadsheet-cell rule both ways.

Formats (``auto`` picks by header, ``detect_format``):

``generic``    email + name (or first/last name); ``status`` (active, unsubscribed,
               bounced, complained and common synonyms); ``attributes`` (a JSON
               object); our own export's ``lists``/``unsubscribed_lists``/
               ``pending_lists``; every other column becomes an attribute.
``mailchimp``  "Email Address", "First Name", "Last Name", merge fields ->
               attributes, OPTIN/CONFIRM time and IP -> the consent record; an
               unsubscribed (UNSUB_TIME) or cleaned (CLEAN_TIME) export suppresses.
``listmonk``   email, name, attributes (JSON); status blocklisted/disabled suppresses.
``substack``   email, active_subscription, expiry, plan, email_disabled (true
               suppresses), created_at -> consent record.

``ROW_READERS[format](record, header)`` turns one row (column key -> cell) into an
``ImportRow`` or raises ``RowError``. Attribute keys are the column names in lower snake
case (``Member Since`` -> ``member_since``), so templates can use ``%%attr.member_since%%``.

A cell that begins with ``=`` ``+`` ``-`` ``@``, a tab or a carriage return is exported
with a leading ``'`` (``spreadsheet_cell``), so a spreadsheet shows it as text instead of
running it as a formula; import removes that one ``'`` again, from every format
(``from_spreadsheet_cell``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from newsletter.errors import AddressError, StoreError
from newsletter.store import ImportRow, normalize_address
from newsletter.store.ops import validate_list_name
from newsletter.store.schema import ACTIVE, BOUNCED, COMPLAINED, PENDING, UNSUBSCRIBED

FORMATS = ("auto", "generic", "mailchimp", "listmonk", "substack")
# A cell starting with one of these is a formula to a spreadsheet (the OWASP list).
FORMULA_STARTS = frozenset("=+-@\t\r")

EMAIL_KEYS = ("email", "email_address", "e_mail", "e_mail_address", "emailaddress", "mail")
NAME_KEYS = ("name", "full_name", "fullname", "display_name")
FIRST_NAME_KEYS = ("first_name", "firstname", "given_name", "fname")
LAST_NAME_KEYS = ("last_name", "lastname", "surname", "family_name", "lname")
LIST_KEYS = {"lists": ACTIVE, "unsubscribed_lists": UNSUBSCRIBED, "pending_lists": PENDING}
_STATUS_WORDS = {
    "": ACTIVE,
    "active": ACTIVE,
    "subscribed": ACTIVE,
    "confirmed": ACTIVE,
    "enabled": ACTIVE,
    "unsubscribed": UNSUBSCRIBED,
    "unsubscribe": UNSUBSCRIBED,
    "opted_out": UNSUBSCRIBED,
    "optout": UNSUBSCRIBED,
    "blocklisted": UNSUBSCRIBED,
    "blacklisted": UNSUBSCRIBED,
    "disabled": UNSUBSCRIBED,
    "bounced": BOUNCED,
    "cleaned": BOUNCED,
    "hard_bounce": BOUNCED,
    "complained": COMPLAINED,
    "spam": COMPLAINED,
    "spam_complaint": COMPLAINED,
}
_TRUE = {"true", "yes", "1", "y", "t"}
# Mailchimp bookkeeping that is not about the person; consent columns go to the consent record.
_MAILCHIMP_SKIP = {
    "member_rating",
    "optin_time",
    "optin_ip",
    "confirm_time",
    "confirm_ip",
    "latitude",
    "longitude",
    "gmtoff",
    "dstoff",
    "cc",
    "region",
    "last_changed",
    "leid",
    "euid",
}


_PERSON_KEYS = (NAME_KEYS, FIRST_NAME_KEYS, LAST_NAME_KEYS)
# Per format, the columns read into the row itself rather than kept as attributes.
_NOT_ATTRIBUTES = {
    "generic": frozenset({"attributes", "created_at", "updated_at", "status", *LIST_KEYS}),
    "mailchimp": frozenset(_MAILCHIMP_SKIP),
    "listmonk": frozenset({"attributes", "status", "uuid", "created_at", "updated_at"}),
    "substack": frozenset({"email_disabled", "created_at", "subscription_date"}),
}


# Local, not in errors.py: a signal caught within the import, never reaching the CLI.
class RowError(ValueError):
    """One row cannot be imported; the message is the reason shown to the user."""


def spreadsheet_cell(value: str) -> str:
    """``value`` as an export cell: a leading ``'`` when a spreadsheet would run it."""
    return "'" + value if value[:1] in FORMULA_STARTS and value else value


def from_spreadsheet_cell(value: str) -> str:
    """An imported cell -> the value, without the ``'`` that ``spreadsheet_cell`` added."""
    if value[:1] == "'" and value[1:2] in FORMULA_STARTS and len(value) > 1:
        return value[1:]
    return value


def column_key(name: str) -> str:
    """A header as written -> its key in lower snake case ("Email Address" -> email_address)."""
    return re.sub(r"\W+", "_", name.replace("\ufeff", "").strip().lower()).strip("_")


class Header:
    """The header row: raw names, keys, and where the email column is."""

    def __init__(self, names: list[str]) -> None:
        self.names = [name.replace("\ufeff", "").strip() for name in names]
        self.keys = [column_key(name) for name in self.names]
        self.key_set = set(self.keys)
        self._first: dict[tuple[str, ...], str | None] = {}
        self._skips: dict[str, frozenset[str]] = {}

    def skip_for(self, fmt: str) -> frozenset[str]:
        """Columns that are not attributes in format ``fmt`` (memoised: asked once per row)."""
        if fmt not in self._skips:
            found = (self.first(keys) for keys in (EMAIL_KEYS, *_PERSON_KEYS))
            skip = {key for key in found if key} | _NOT_ATTRIBUTES[fmt]
            if fmt == "mailchimp":
                skip |= {key for key in self.key_set if key.startswith(("unsub_", "clean_"))}
            self._skips[fmt] = frozenset(skip)
        return self._skips[fmt]

    def first(self, candidates: tuple[str, ...]) -> str | None:
        """The first of ``candidates`` present as a column key, or None (memoised: per row)."""
        if candidates not in self._first:
            found = next((key for key in candidates if key in self.key_set), None)
            self._first[candidates] = found
        return self._first[candidates]


def detect_format(header: Header) -> str:
    """The export format a header belongs to (generic when nothing specific matches)."""
    keys = header.key_set
    if "email_address" in keys:
        return "mailchimp"
    if keys & {"active_subscription", "email_disabled", "first_payment_at", "prefer_digests"}:
        return "substack"
    if "subscription_date" in keys:
        return "substack"
    if "attributes" in keys and "lists" not in keys:
        return "listmonk"
    return "generic"


# -- one row per format ------------------------------------------------------------------------


def _email(record: dict[str, str], header: Header) -> str:
    key = header.first(EMAIL_KEYS)
    raw = record.get(key or "", "").strip()
    if not raw:
        raise RowError("no email address")
    try:
        return normalize_address(raw)
    except AddressError as exc:
        raise RowError(exc.message) from None


def _name(record: dict[str, str], header: Header) -> str:
    key = header.first(NAME_KEYS)
    if key and record.get(key, "").strip():
        return " ".join(record[key].split())
    first, last = header.first(FIRST_NAME_KEYS), header.first(LAST_NAME_KEYS)
    parts = [record.get(key, "") for key in (first, last) if key]
    return " ".join(" ".join(parts).split())


def _json_attributes(raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RowError(f"attributes is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise RowError('attributes must be a JSON object like {"city": "Oslo"}')
    return value


def _plain_attributes(record: dict[str, str], skip: frozenset[str]) -> dict[str, Any]:
    return {k: v.strip() for k, v in record.items() if k not in skip and k and v.strip()}


def _parse_time(raw: str) -> datetime | None:
    text = raw.strip().replace(" ", "T", 1)
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _generic(record: dict[str, str], header: Header) -> ImportRow:
    email = _email(record, header)
    attributes = _plain_attributes(record, header.skip_for("generic"))
    status = ACTIVE
    if "status" in header.key_set:
        word = column_key(record.get("status", ""))
        if word in _STATUS_WORDS:
            status = _STATUS_WORDS[word]
        else:  # a column called status that is not about subscription: keep it as data
            attributes["status"] = record["status"].strip()
    attributes.update(_json_attributes(record.get("attributes", "")))
    lists: dict[str, str] | None = None
    if "lists" in header.key_set:
        lists = {}
        for key, list_status in LIST_KEYS.items():
            for name in re.split(r"[;,]", record.get(key, "")):
                if name.strip():
                    try:
                        lists[validate_list_name(name)] = list_status
                    except StoreError as exc:
                        raise RowError(f"{key}: {exc.message}") from None
    detail = {"optin_time": record["created_at"]} if record.get("created_at") else {}
    return ImportRow(
        email=email,
        name=_name(record, header),
        attributes=attributes,
        status=status,
        lists=lists,
        detail=detail,
    )


def _mailchimp(record: dict[str, str], header: Header) -> ImportRow:
    email = _email(record, header)
    skip = header.skip_for("mailchimp")
    status = ACTIVE
    if "clean_time" in header.key_set:
        status = BOUNCED
    elif "unsub_time" in header.key_set:
        status = UNSUBSCRIBED
    detail = {
        key: record[key].strip()
        for key in ("optin_time", "confirm_time", "unsub_time", "unsub_reason", "clean_time")
        if record.get(key, "").strip()
    }
    ip = (record.get("confirm_ip") or record.get("optin_ip") or "").strip() or None
    return ImportRow(
        email=email,
        name=_name(record, header),
        attributes=_plain_attributes(record, skip),
        status=status,
        ip=ip,
        confirmed_at=_parse_time(record.get("confirm_time", "")),
        detail=detail,
    )


def _listmonk(record: dict[str, str], header: Header) -> ImportRow:
    email = _email(record, header)
    attributes = _plain_attributes(record, header.skip_for("listmonk"))
    attributes.update(_json_attributes(record.get("attributes", "")))
    state = column_key(record.get("status", ""))
    status = UNSUBSCRIBED if state in ("blocklisted", "disabled") else ACTIVE
    detail = {"optin_time": record["created_at"]} if record.get("created_at") else {}
    return ImportRow(
        email=email, name=_name(record, header), attributes=attributes, status=status, detail=detail
    )


def _substack(record: dict[str, str], header: Header) -> ImportRow:
    email = _email(record, header)
    skip = header.skip_for("substack")
    disabled = record.get("email_disabled", "").strip().lower() in _TRUE
    since = record.get("created_at") or record.get("subscription_date") or ""
    return ImportRow(
        email=email,
        name=_name(record, header),
        attributes=_plain_attributes(record, skip),
        status=UNSUBSCRIBED if disabled else ACTIVE,
        detail={"optin_time": since.strip()} if since.strip() else {},
    )


ROW_READERS: dict[str, Callable[[dict[str, str], Header], ImportRow]] = {
    "generic": _generic,
    "mailchimp": _mailchimp,
    "listmonk": _listmonk,
    "substack": _substack,
}
