"""Importing a subscriber file: ``import_file(store, path, ...) -> ImportReport``.

Import streams the file: the encoding is settled over the whole file first
(a UTF-8 BOM, UTF-16, UTF-8, else Windows-1252/Latin-1, or ``--encoding``;
a file with UTF-8 on some lines and other bytes on others is refused, naming
the first line that is not UTF-8; a row starting with a byte order mark is bad),
the separator from the header line (``,`` ``;`` tab ``|``, or an Excel
``sep=`` line), then rows go to the store in batches of ``batch_size``, one
transaction each. A file without an email column is refused before anything
is written. Bad rows are reported as (physical line number, reason) and
skipped; a database failure stops the import with the line of the batch that
was not written (every earlier batch is committed; re-running is safe).
How each format's columns become a subscriber is in ``audience.formats``.
No subscriber data is logged: log lines carry file names and counts only.
"""

from __future__ import annotations

import codecs
import csv
import gc
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from newsletter.audience.formats import (
    EMAIL_KEYS,
    FORMATS,
    ROW_READERS,
    Header,
    RowError,
    detect_format,
    from_spreadsheet_cell,
)
from newsletter.errors import StoreError
from newsletter.store import BatchResult, Consent, ImportRow, Store
from newsletter.store.ops import validate_list_name
from newsletter.store.records import surely_storable

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000
_DELIMITERS = (",", ";", "\t", "|")
_SEP_LINE = re.compile(r'^\s*"?sep=(.)"?\s*$', re.IGNORECASE)


@dataclass(frozen=True)
class FileShape:
    """How to read a file: its text encoding, separator and whether line 1 is ``sep=``."""

    encoding: str
    delimiter: str
    sep_line: bool


def detect_encoding(path: Path) -> str:
    """The encoding that decodes the whole file: BOM, UTF-8, Windows-1252, else Latin-1.

    Raises StoreError for a file that mixes encodings: valid multi-byte UTF-8 on
    some lines and bytes that are not UTF-8 on others (any single-byte guess
    would garble one half), naming the first line that is not UTF-8.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    bad_line, utf8_line = _utf8_lines(path)
    if bad_line is None:
        return "utf-8-sig"
    if utf8_line is not None:
        raise StoreError(
            f"{path}:{bad_line}: this line is not UTF-8 text, but line {utf8_line} is: "
            "the file mixes encodings; nothing was imported",
            hint="re-save the file as UTF-8, or pass --encoding (e.g. --encoding cp1252) "
            "if the whole file is in one other encoding",
        )
    return "cp1252" if _decodes(path, "cp1252") else "latin-1"


def _utf8_lines(path: Path) -> tuple[int | None, int | None]:
    """(first line that is not UTF-8, first line with multi-byte UTF-8), each None if none."""
    bad: int | None = None
    multibyte: int | None = None
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.isascii():
                continue
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                bad = bad or number
            else:
                multibyte = multibyte or number
            if bad is not None and multibyte is not None:
                break
    return bad, multibyte


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


@contextmanager
def _open_rows(path: Path, shape: FileShape) -> Iterator[tuple[Header, Any]]:
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
        header = Header(names)
        if header.first(EMAIL_KEYS) is None:
            shown = ", ".join(repr(name) for name in header.names[:12]) or "nothing"
            raise StoreError(
                f"{path}:{reader.line_num}: no email column in the header (found {shown}); "
                "nothing was imported",
                hint="name the address column 'email' or check the separator",
            )
        yield header, reader


@dataclass
class _Part:
    """One batch as read: its rows, how many rows were read for it and the bad ones among
    them (line, reason), in file order."""

    rows: list[ImportRow] = field(default_factory=list)
    read: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)
    checked: int = 0  # rows[:checked] are known to be storable


def _parts(
    reader: Any,
    header: Header,
    mapper: Callable[[dict[str, str], Header], ImportRow],
    report: ImportReport,
    batch_size: int,
    *,
    keep_lists: bool,
) -> Iterator[_Part]:
    """The data rows in batches of ``batch_size`` (the last one possibly empty, carrying the
    bad rows after the last good one); ``keep_lists`` False drops the lists the file names."""
    part = _Part()
    for line, row in _rows(reader, header, mapper, report):
        part.read += 1
        if isinstance(row, str):
            part.invalid.append((line, row))
        else:
            part.rows.append(row)
            if len(part.rows) >= batch_size and _storable(part):
                yield _lists_kept(part, keep_lists)
                part = _Part()
    _storable(part)
    yield _lists_kept(part, keep_lists)


def _lists_kept(part: _Part, keep: bool) -> _Part:
    """``part``, without the lists its rows name unless ``keep`` (checked all the same)."""
    if not keep:
        for row in part.rows:
            row.lists = None
    return part


def _storable(part: _Part) -> bool:
    """Move the rows added to ``part`` since the last call that no database would store
    (a NUL, say) to its bad rows, each by its own line -> True when none was moved.

    One check over the new rows at once costs half as much as one per row; only when it
    finds something are they looked at one by one."""
    new = part.rows[part.checked :]
    if not surely_storable([row.stored_values() for row in new]):
        kept = part.rows[: part.checked]
        for row in new:
            problem = row.unstorable_field()
            if problem is None:
                kept.append(row)
            else:
                part.invalid.append((row.line, f"{problem[0]} {problem[1]}"))
        if len(kept) < len(part.rows):
            part.invalid.sort()  # back in file order
            part.rows = kept
            part.checked = len(kept)
            return False
    part.checked = len(part.rows)
    return True


def _rows(
    reader: Any,
    header: Header,
    mapper: Callable[[dict[str, str], Header], ImportRow],
    report: ImportReport,
) -> Iterator[tuple[int, ImportRow | str]]:
    """Data rows -> (first physical line, ImportRow or the reason it is bad); blank rows
    are skipped, values no database stores are left to ``_storable``. Reads nothing of
    ``report`` but its path and encoding."""
    width = len(header.keys)
    boms = _bom_texts(report.encoding)
    last = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield last + 1, f"unreadable CSV ({exc})"
            last = reader.line_num
            continue
        except UnicodeDecodeError as exc:
            raise StoreError(
                f"{report.path}:{last + 1}: not {report.encoding} text ({exc.reason})",
                hint="pass the right --encoding; rows before this line were imported",
            ) from None
        line, last = last + 1, reader.line_num
        joined = "".join(values)
        if not joined.strip():
            continue
        if values[0].startswith(boms):
            yield line, "starts with a byte order mark (a file pasted in here?)"
            continue
        if len(values) > width and any(value.strip() for value in values[width:]):
            yield line, f"{len(values)} fields where the header has {width} (unquoted separator?)"
            continue
        cells = map(from_spreadsheet_cell, values) if "'" in joined else values
        record = dict(zip(header.keys, cells, strict=False))
        try:
            row = mapper(record, header)
        except RowError as exc:
            reason = str(exc)
            if last > line and any("\n" in value for value in values):
                # a quoted field ran over line ends: most often a quote never closed
                reason += f" (this row runs over lines {line}-{last}: check for an unclosed quote)"
            yield line, reason
            continue
        row.line = line  # a value no database stores is reported by it (_storable)
        yield line, row


def _bom_texts(encoding: str) -> tuple[str, ...]:
    """How the byte order marks read in ``encoding``: a line starting so is a pasted file."""
    texts = {"\ufeff"}
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            texts.add(bom.decode(encoding))
        except (UnicodeDecodeError, LookupError):
            continue
    return tuple(sorted(text for text in texts if text))  # a decoder that eats the BOM gives ""


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
    with _open_rows(path, shape) as (header, reader), _collector_skips_older_objects():
        chosen = detect_format(header) if fmt == "auto" else fmt
        report = ImportReport(path, chosen, shape.encoding, shape.delimiter)
        consent = Consent(source="import", detail={"file": path.name, "format": chosen})
        parts = _parts(
            reader, header, ROW_READERS[chosen], report, batch_size, keep_lists=list_name is None
        )
        for part in parts:
            report.rows += part.read
            report.invalid.extend(part.invalid)
            if part.rows:
                _commit(store, part.rows, report, list_name or default_list, consent, resubscribe)
                if on_batch:
                    on_batch(report)
    log.info("%s", report.summary())
    return report


@contextmanager
def _collector_skips_older_objects() -> Iterator[None]:
    """While the block runs, the garbage collector leaves out every object alive before it.

    A long import keeps its batch alive long enough for the collector to run a few full
    passes, and each went through every object of every module loaded (SQLAlchemy, the
    driver, ...): a tenth of the import's CPU time. Frozen objects are only skipped, not
    kept: unfreezing puts them back. A process that freezes objects itself is left alone.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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
            batch, list_name=list_name, consent=consent, resubscribe=resubscribe, checked=True
        )
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StoreError(
            f"{report.path}:{batch[0].line}: import stopped, the database refused the batch "
            f"from this line on ({reason}); rows before it were imported, none from it",
            hint="fix the cause and import the same file again: imported rows count as unchanged",
        ) from None
    report.counts.merge(result)
