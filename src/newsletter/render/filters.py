"""The template filters: dates written out, plain text wrapped, link hosts, credit lines."""

from __future__ import annotations

import re
import textwrap
from datetime import date
from urllib.parse import urlsplit

from newsletter.models import Teaser

TEXT_WIDTH = 76

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def long_date(value: str | date) -> str:
    """An ISO date (``"2026-11-28"`` or a date) -> ``"28 November 2026"``."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def wrap_text(value: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    """Wrap each paragraph of ``value`` to ``width`` columns; URLs and long words never break."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", value.strip())]
    wrapped = [
        textwrap.fill(
            " ".join(p.split()),
            width=width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for p in paragraphs
        if p
    ]
    return "\n\n".join(wrapped)


def url_host(url: str) -> str:
    """``"https://www.example.org/a/b"`` -> ``"example.org"``; "" when ``url`` has no host."""
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


def credit_line(teaser: Teaser) -> str:
    """The line under a headline: ``"By Jane Roe · example.org"`` (either part may be absent)."""
    parts = []
    byline = " ".join(teaser.byline.split())
    if byline:
        parts.append(byline if byline.lower().startswith("by ") else f"By {byline}")
    if url_host(teaser.url):
        parts.append(url_host(teaser.url))
    return " · ".join(parts)
