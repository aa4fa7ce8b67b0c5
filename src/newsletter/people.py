"""Subscriber files in and out: import (generic, Mailchimp, listmonk, Substack) and export.

Import streams the file: the encoding is settled over the whole file first
(a UTF-8 BOM, UTF-16, UTF-8, else Windows-1252/Latin-1, or ``--encoding``),
the separator from the header line (``,`` ``;`` tab ``|``, or an Excel
``sep=`` line), then rows go to the store in batches of ``batch_size``, one
transaction each. A file without an email column is refused before anything
is written. Bad rows are reported as (physical line number, reason) and
skipped; a database failure stops the import with the line of the batch that
was not written (every earlier batch is committed; re-running is safe).

Formats (``auto`` picks by header):

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

Attribute keys are the column names in lower snake case (``Member Since`` ->
``member_since``), so templates can use ``%%attr.member_since%%``.

Export writes ``EXPORT_COLUMNS``; importing that file again changes nothing. A cell that
begins with ``=`` ``+`` ``-`` ``@``, a tab or a carriage return gets a leading ``'``, so a
spreadsheet shows it as text instead of running it as a formula (a name such as
``=HYPERLINK(...)``); import removes that one ``'`` again, from every format.
No subscriber data is logged: log lines carry file names and counts only.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.exc import SQLAlchemyError

from newsletter.errors import StoreError
from newsletter.store import (
    AddressError,
    BatchResult,
    Consent,
    ImportRow,
    Store,
    SubscriberSummary,
    normalize_address,
)
from newsletter.store.ops import validate_list_name
from newsletter.store.schema import ACTIVE, BOUNCED, COMPLAINED, PENDING, UNSUBSCRIBED
from newsletter.textsafe import printable

log = logging.getLogger(__name__)

FORMATS = ("auto", "generic", "mailchimp", "listmonk", "substack")
EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "lists",
    "unsubscribed_lists",
    "pending_lists",
    "attributes",
    "created_at",
    "updated_at",
)
DEFAULT_BATCH = 1000
# A cell starting with one of these is a formula to a spreadsheet (the OWASP list).
FORMULA_STARTS = frozenset("=+-@\t\r")
_DELIMITERS = (",", ";", "\t", "|")
_SEP_LINE = re.compile(r'^\s*"?sep=(.)"?\s*$', re.IGNORECASE)

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


# -- reading the file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileShape:
    """How to read a file: its text encoding, separator and whether line 1 is ``sep=``."""

    encoding: str
    delimiter: str
    sep_line: bool


def detect_encoding(path: Path) -> str:
    """The encoding that decodes the whole file: BOM, UTF-8, Windows-1252, else Latin-1."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        if _decodes(path, encoding):
            return "utf-8-sig" if encoding == "utf-8" else encoding
    return "latin-1"


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def inspect_file(path: Path, encoding: str | None = None) -> FileShape:
    """Settle encoding and separator of ``path`` before reading rows, or raise StoreError."""
    if not path.is_file():
        raise StoreError(f"{path}: no such file", hint="check the path of the file to import")
    if encoding:
        try:
            encoding = codecs.lookup(encoding).name
        except LookupError:
            raise StoreError(
                f"unknown encoding {encoding!r}", hint="use e.g. utf-8, latin-1, cp1252"
            ) from None
    else:
        encoding = detect_encoding(path)
    try:
        with path.open(encoding=encoding, newline="") as handle:
            sample = handle.read(65536)
    except UnicodeDecodeError as exc:
        raise StoreError(
            f"{path}: not {encoding} text ({exc.reason})", hint="pass the right --encoding"
        ) from None
    lines = [line for line in sample.splitlines() if line.strip()]
    if not lines:
        raise StoreError(f"{path}: the file is empty", hint="export the subscribers again")
    sep = _SEP_LINE.match(lines[0])
    if sep:
        return FileShape(encoding, sep.group(1), True)
    header = lines[0]
    best = max(_DELIMITERS, key=lambda d: len(next(csv.reader([header], delimiter=d))))
    return FileShape(encoding, best, False)


@dataclass
class ImportReport:
    """What an import did: counts, the invalid rows (line, reason) and how the file was read."""

    path: Path
    format: str
    encoding: str
    delimiter: str
    rows: int = 0
    counts: BatchResult = field(default_factory=BatchResult)
    invalid: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line: rows read and added / updated / unchanged / suppressed / invalid."""
        c = self.counts
        parts = [
            f"{c.added} added",
            f"{c.updated} updated",
            f"{c.unchanged} unchanged",
            f"{c.suppressed} suppressed",
            f"{len(self.invalid)} invalid",
        ]
        if c.resubscribed:
            parts.append(f"{c.resubscribed} resubscribed")
        if c.duplicates:
            parts.append(f"{c.duplicates} duplicate rows merged")
        return f"{self.path.name}: {self.rows} rows ({self.format}): " + ", ".join(parts)


class _Header:
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


def detect_format(header: _Header) -> str:
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


@contextmanager
def _open_rows(path: Path, shape: FileShape) -> Iterator[tuple[_Header, Any]]:
    """Open ``path`` -> (header, reader after it); refuses a file without an email column."""
    with path.open(encoding=shape.encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=shape.delimiter)
        names: list[str] = []
        for values in reader:
            if shape.sep_line and reader.line_num == 1:
                continue
            if any(value.strip() for value in values):
                names = values
                break
        header = _Header(names)
        if header.first(EMAIL_KEYS) is None:
            shown = ", ".join(repr(name) for name in header.names[:12]) or "nothing"
            raise StoreError(
                f"{path}:{reader.line_num}: no email column in the header (found {shown}); "
                "nothing was imported",
                hint="name the address column 'email' or check the separator",
            )
        yield header, reader


# -- one row per format -------------------------------------------------------------------------


def _email(record: dict[str, str], header: _Header) -> str:
    key = header.first(EMAIL_KEYS)
    raw = record.get(key or "", "").strip()
    if not raw:
        raise RowError("no email address")
    try:
        return normalize_address(raw)
    except AddressError as exc:
        raise RowError(exc.message) from None


def _name(record: dict[str, str], header: _Header) -> str:
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


def _generic(record: dict[str, str], header: _Header) -> ImportRow:
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


def _mailchimp(record: dict[str, str], header: _Header) -> ImportRow:
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


def _listmonk(record: dict[str, str], header: _Header) -> ImportRow:
    email = _email(record, header)
    attributes = _plain_attributes(record, header.skip_for("listmonk"))
    attributes.update(_json_attributes(record.get("attributes", "")))
    state = column_key(record.get("status", ""))
    status = UNSUBSCRIBED if state in ("blocklisted", "disabled") else ACTIVE
    detail = {"optin_time": record["created_at"]} if record.get("created_at") else {}
    return ImportRow(
        email=email, name=_name(record, header), attributes=attributes, status=status, detail=detail
    )


def _substack(record: dict[str, str], header: _Header) -> ImportRow:
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


_MAPPERS: dict[str, Callable[[dict[str, str], _Header], ImportRow]] = {
    "generic": _generic,
    "mailchimp": _mailchimp,
    "listmonk": _listmonk,
    "substack": _substack,
}


def _rows(
    reader: Any,
    header: _Header,
    mapper: Callable[[dict[str, str], _Header], ImportRow],
    report: ImportReport,
) -> Iterator[ImportRow]:
    """Data rows -> ImportRows with their first physical line; bad ones go to ``report.invalid``."""
    width = len(header.keys)
    last = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.rows += 1
            report.invalid.append((last + 1, f"unreadable CSV ({exc})"))
            last = reader.line_num
            continue
        except UnicodeDecodeError as exc:
            raise StoreError(
                f"{report.path}:{last + 1}: not {report.encoding} text ({exc.reason})",
                hint="pass the right --encoding; rows before this line were imported",
            ) from None
        line, last = last + 1, reader.line_num
        if not any(value.strip() for value in values):
            continue
        report.rows += 1
        if len(values) > width and any(value.strip() for value in values[width:]):
            report.invalid.append(
                (line, f"{len(values)} fields where the header has {width} (unquoted separator?)")
            )
            continue
        record = dict(zip(header.keys, map(from_spreadsheet_cell, values), strict=False))
        try:
            row = mapper(record, header)
        except RowError as exc:
            reason = str(exc)
            if last > line and any("\n" in value for value in values):
                # a quoted field ran over line ends: most often a quote never closed
                reason += f" (this row runs over lines {line}-{last}: check for an unclosed quote)"
            report.invalid.append((line, reason))
            continue
        problem = row.unstorable_field()
        if problem is not None:  # reported here, by its own line, not as a failed batch
            report.invalid.append((line, f"{problem[0]} {problem[1]}"))
            continue
        row.line = line
        yield row


def import_file(
    store: Store,
    path: Path,
    *,
    list_name: str | None,
    default_list: str,
    fmt: str = "auto",
    encoding: str | None = None,
    resubscribe: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import subscriber file ``path`` -> ImportReport (see the module docstring).

    ``list_name`` puts every row on that list; without it rows go to the lists
    the file names (our own export) or ``default_list``. ``resubscribe`` is the
    description of fresh consent that alone lets suppressed people back in.
    ``on_batch`` is called after each committed batch. Raises StoreError for a
    refused file (nothing written) or a failed batch (earlier ones committed).
    """
    if fmt not in FORMATS:
        raise StoreError(f"unknown format {fmt!r}", hint="use one of " + ", ".join(FORMATS))
    if resubscribe is not None and not resubscribe.strip():
        raise StoreError(
            "--resubscribe needs a description of the new consent",
            hint="e.g. --resubscribe 'asked by email on 2026-03-02'",
        )
    validate_list_name(list_name or default_list)
    shape = inspect_file(path, encoding)
    with _open_rows(path, shape) as (header, reader):
        chosen = detect_format(header) if fmt == "auto" else fmt
        report = ImportReport(path, chosen, shape.encoding, shape.delimiter)
        consent = Consent(source="import", detail={"file": path.name, "format": chosen})
        batch: list[ImportRow] = []
        for row in _rows(reader, header, _MAPPERS[chosen], report):
            if list_name is not None:
                row.lists = None
            batch.append(row)
            if len(batch) >= batch_size:
                _commit(store, batch, report, list_name or default_list, consent, resubscribe)
                if on_batch:
                    on_batch(report)
                batch = []
        if batch:
            _commit(store, batch, report, list_name or default_list, consent, resubscribe)
            if on_batch:
                on_batch(report)
    log.info("%s", report.summary())
    return report


def _commit(
    store: Store,
    batch: list[ImportRow],
    report: ImportReport,
    list_name: str,
    consent: Consent,
    resubscribe: str | None,
) -> None:
    try:
        result = store.import_batch(
            batch, list_name=list_name, consent=consent, resubscribe=resubscribe
        )
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StoreError(
            f"{report.path}:{batch[0].line}: import stopped, the database refused the batch "
            f"from this line on ({reason}); rows before it were imported, none from it",
            hint="fix the cause and import the same file again: imported rows count as unchanged",
        ) from None
    report.counts.merge(result)


# -- export -------------------------------------------------------------------------------------


def export_row(sub: SubscriberSummary) -> list[str]:
    """One subscriber -> the EXPORT_COLUMNS values."""
    by_status: dict[str, list[str]] = {ACTIVE: [], UNSUBSCRIBED: [], PENDING: []}
    for list_name, list_status in sub.lists.items():
        by_status[list_status].append(list_name)
    attributes = (
        json.dumps(sub.attributes, ensure_ascii=False, sort_keys=True) if sub.attributes else ""
    )
    cells = [
        sub.email,
        sub.name,
        sub.status,
        ";".join(by_status[ACTIVE]),
        ";".join(by_status[UNSUBSCRIBED]),
        ";".join(by_status[PENDING]),
        attributes,
        sub.created_at.isoformat(),
        sub.updated_at.isoformat(),
    ]
    return [spreadsheet_cell(cell) for cell in cells]


def write_export(
    store: Store, out: TextIO, *, list_name: str | None = None, status: str | None = None
) -> int:
    """Stream subscribers (filtered like ``Store.count``) as CSV to ``out`` -> rows written."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for sub in store.iter_summaries(list_name=list_name, status=status):
        writer.writerow(export_row(sub))
        written += 1
    return written


def export_file(
    store: Store, path: Path, *, list_name: str | None = None, status: str | None = None
) -> int:
    """Export to ``path`` atomically (temporary file, then rename) -> rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            written = write_export(store, handle, list_name=list_name, status=status)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    log.info("exported %d subscribers to %s", written, path.name)
    return written


# -- the single-address verbs -------------------------------------------------------------------


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
            f"{address} unsubscribed, bounced, complained or was erased; not added to {list_name}",
            hint="only with their new consent: --resubscribe 'how and when they asked'",
        )
    return f"{address}: {outcome} ({list_name})"


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
