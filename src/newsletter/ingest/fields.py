"""Normalise the small fields every reader fills: dates, image URLs, author lists, titles.

In: whatever the source had (a date line, a relative image path, a list of authors).
Out: the one form an ``Article`` holds: ISO dates, absolute http(s) image URLs or "",
comma-joined bylines.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable
from urllib.parse import urljoin, urlparse

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})")
_DAY_MONTH_YEAR = re.compile(r"\b(\d{1,2})\.?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b")
_MONTH_DAY_YEAR = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
_DOTTED = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b")


def iso_date(value: object) -> str:
    """An ISO date ("2026-11-28") from a date, datetime, struct_time or date text, else "".

    Text may be "2026-11-28T10:00Z", "28 November 2026", "Nov 28, 2026", "28.11.2026",
    optionally with words around it ("Published: ..."). Impossible dates give "".
    """
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, time.struct_time):
        return _build(value.tm_year, value.tm_mon, value.tm_mday)
    if not isinstance(value, str):
        return ""
    if match := _ISO.search(value):
        return _build(int(match[1]), int(match[2]), int(match[3]))
    if (match := _DAY_MONTH_YEAR.search(value)) and match[2].lower() in _MONTHS:
        return _build(int(match[3]), _MONTHS[match[2].lower()], int(match[1]))
    if (match := _MONTH_DAY_YEAR.search(value)) and match[1].lower() in _MONTHS:
        return _build(int(match[3]), _MONTHS[match[1].lower()], int(match[2]))
    if match := _DOTTED.search(value):
        return _build(int(match[3]), int(match[2]), int(match[1]))
    return ""


def _build(year: int, month: int, day: int) -> str:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return ""


def is_web_url(value: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    parsed = urlparse(value)
    return parsed.scheme in {"http", "https"} and bool(parsed.netloc)


def absolute_url(value: str, base: str = "") -> str:
    """``value`` made absolute against ``base``; "" when it cannot be an http(s) URL.

    Images in an email must be absolute: a relative path with no base to resolve it
    against is dropped rather than shipped broken.
    """
    value = (value or "").strip()
    if not value or value.startswith("data:"):
        return ""
    if value.startswith("//"):
        value = "https:" + value
    if is_web_url(value):
        return value
    if base and is_web_url(base):
        joined = urljoin(base, value)
        return joined if is_web_url(joined) else ""
    return ""


def join_names(value: object) -> str:
    """A byline from a name, a list of names, or a list of {"name": ...} dicts."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, dict):
        return join_names(value.get("name", ""))
    if isinstance(value, Iterable):
        names = [join_names(item) for item in value]
        return ", ".join(name for name in names if name)
    return ""
