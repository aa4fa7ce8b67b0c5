"""Normalise the small fields every reader fills: dates, image URLs, author lists, titles.

In: whatever the source had (a date line, a relative image path, a list of authors).
Out: the one form an ``Article`` holds: ISO dates, absolute, sendable http(s) URLs or "",
comma-joined bylines.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Iterable
from urllib.parse import quote, urljoin, urlparse, urlsplit, urlunsplit

log = logging.getLogger(__name__)

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


def is_local_reference(value: str) -> bool:
    """True for a file path ("photos/a.jpg", "/srv/a.png"): no scheme, not "//host/...".

    An editor's own files (Markdown front matter and bodies, issue.json) may name one;
    a page or feed read from disk only a file inside the workspace (``disk_images``);
    what a fetched feed or page says is never read as a path.
    """
    value = value.strip()
    if not value or value.startswith("//") or "\n" in value:
        return False
    return not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value)


def absolute_url(value: str, base: str = "") -> str:
    """``value`` as a sendable absolute http(s) URL, resolved against ``base``; else "".

    Every URL an Article gets (its link, its image) goes through here. Images and links
    in an email must be absolute: a relative path with no base to resolve it against is
    dropped rather than shipped broken, and so is any other scheme (javascript:, data:,
    mailto:). What remains is normalised the way browsers read it: tabs and line breaks
    removed, the host in IDNA form, and spaces, non-ASCII and other characters a URL
    may not hold percent-encoded (valid URLs stay as they are).
    """
    value = _CONTROL.sub("", (value or "").strip())
    if not value or value.lower().startswith("data:"):
        return ""
    if value.startswith("//"):
        value = "https:" + value
    if not is_web_url(value):
        if not (base and is_web_url(base)):
            return ""
        value = urljoin(base, value)
    return _encoded(value) if is_web_url(value) else ""


def web_url(value: str, base: str = "", *, where: str) -> str:
    """``absolute_url(value, base)``, with a warning naming ``where`` when a given value is
    dropped (a javascript: link, a data: image, a relative path with nothing to resolve it).
    """
    url = absolute_url(value, base)
    if value and value.strip() and not url:
        log.warning("%s: %r is not a web address; left out", where, _shown(value))
    return url


def _shown(value: str) -> str:
    """At most 80 characters of an untrusted value, for a log line."""
    value = " ".join(value.split())
    return value if len(value) <= 80 else value[:77] + "..."


# WHATWG URL parsing drops tabs and line breaks anywhere in a URL
_CONTROL = re.compile(r"[\t\r\n]")
# a "%" that does not start an escape is a literal percent sign
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# a DNS name (after IDNA) or an IP literal; nothing else is a host a mail client can reach
_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|[0-9a-f:.]*:[0-9a-f:.]*")
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def _encoded(url: str) -> str:
    """``url`` (absolute http(s)) with an IDNA host and percent-encoded parts; "" if broken."""
    parts = urlsplit(url)
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii")
        port = parts.port
    except (UnicodeError, ValueError):
        return ""
    if not _HOST.fullmatch(host):
        return ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (quote(userinfo, safe="%:!$&'()*+,;=-._~") + "@" if userinfo else "") + host
    netloc += f":{port}" if port is not None else ""
    return urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
            _quote(parts.path, _PATH_SAFE),
            _quote(parts.query, _QUERY_SAFE),
            _quote(parts.fragment, _QUERY_SAFE),
        )
    )


def _quote(part: str, safe: str) -> str:
    return quote(_LONE_PERCENT.sub("%25", part), safe=safe)


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
