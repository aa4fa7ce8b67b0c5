"""Which articles an issue features: dedupe against every earlier issue, ``--since``,
order and ``--limit``; used by ``newsletter compose`` and by recurring series.

An article counts as featured before when any of its keys was recorded for an earlier
issue (``store.featured``): its canonical URL (tracking parameters such as utm_*,
fbclid, gclid, mc_cid, mc_eid and ref dropped; scheme and host lower-cased; the
default port, the fragment and a trailing slash dropped; the query sorted), its feed
GUID, or its folded title (case, punctuation and whitespace folded).

Order (series, and ``compose`` with ``--since`` or ``--limit``): a higher front matter
``priority`` first, then newest ``published`` first; articles without a date come after
the dated ones (in source order) and always pass ``--since``, since a dateless draft is
one the editor put in the sources on purpose and dedupe already keeps it from coming
twice. A plain ``compose`` keeps the order the sources were given in.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from newsletter.compose.folder import issue_key
from newsletter.compose.issue_file import ISSUE_JSON, decode_issue, read_issue_bytes
from newsletter.errors import NewsletterError, SourceError
from newsletter.models import Article, Issue
from newsletter.workspace import Workspace

if TYPE_CHECKING:
    from newsletter.store import Store

log = logging.getLogger(__name__)

SINCE_FORMS = '"last" (since the last issue), "7d" or "2w" (days or weeks back), "2026-12-01"'
_TRACKING = re.compile(
    r"^(?:utm_.*|fbclid|gclid|dclid|msclkid|yclid|mc_cid|mc_eid|ref|ref_src|igshid"
    r"|_hsenc|_hsmi|mkt_tok)$",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_AGO = re.compile(r"^(\d{1,4})\s*([dw])$", re.IGNORECASE)


def canonical_url(url: str) -> str:
    """``url`` as dedupe compares it (see module docstring); "" for no URL."""
    url = url.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    netloc = host
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{host}:{parts.port}"
    query = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING.match(name)
    )
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), urlencode(query), ""))


def title_key(title: str) -> str:
    """A title folded for comparison: NFKC, case-folded, punctuation and symbols dropped,
    whitespace collapsed; "" for a title with no letters or digits."""
    text = unicodedata.normalize("NFKC", title).casefold()
    kept = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return " ".join(kept.split())


def article_keys(url: str, title: str, guid: str = "") -> set[str]:
    """The ``kind:value`` keys one featured article is remembered and matched by."""
    keys = set()
    if value := canonical_url(url):
        keys.add(f"url:{value}")
    if guid.strip():
        keys.add(f"guid:{guid.strip()}")
    if value := title_key(title):
        keys.add(f"title:{value}")
    return keys


def issue_keys(issue: Issue) -> set[str]:
    """Every key the teasers of ``issue`` are remembered by (issue.json has no GUIDs)."""
    return set().union(*(article_keys(teaser.url, teaser.title) for teaser in issue.teasers))


@dataclass(frozen=True)
class Selection:
    """What ``select_articles`` kept (``chosen``, in issue order) and left out: ``repeats``
    (featured in an earlier issue), ``twice`` (pairs of an article and the one kept that it
    repeats among the sources), ``older`` (before --since) and ``over_limit``."""

    chosen: list[Article]
    repeats: list[Article] = field(default_factory=list)
    twice: list[tuple[Article, Article]] = field(default_factory=list)
    older: list[Article] = field(default_factory=list)
    over_limit: list[Article] = field(default_factory=list)


def _order(articles: list[Article]) -> list[Article]:
    """Priority first, then newest first, then dateless ones in source order."""

    def key(item: tuple[int, Article]) -> tuple[float, int, int, int]:
        index, article = item
        if not article.published:
            return (-article.priority, 1, 0, index)
        day = date.fromisoformat(article.published[:10]).toordinal()
        return (-article.priority, 0, -day, index)

    return [article for _, article in sorted(enumerate(articles), key=key)]


def select_articles(
    articles: list[Article],
    *,
    featured: set[str] | None,
    since: date | None = None,
    limit: int | None = None,
    ordered: bool = True,
) -> Selection:
    """``articles`` -> Selection: dedupe against ``featured`` keys (None: repeats allowed;
    the same article twice among ``articles`` is always kept once), drop those published
    before ``since``, order (module docstring; ``ordered=False`` keeps the given order),
    keep at most ``limit``."""
    before = featured or set()
    kept: dict[str, Article] = {}
    fresh: list[Article] = []
    repeats: list[Article] = []
    twice: list[tuple[Article, Article]] = []
    older: list[Article] = []
    for article in _order(articles) if ordered else articles:
        keys = article_keys(article.url, article.title, article.guid)
        if keys & before:
            repeats.append(article)
            continue
        if same := next((kept[key] for key in sorted(keys) if key in kept), None):
            twice.append((article, same))
            continue
        kept.update(dict.fromkeys(keys, article))
        if since is not None and article.published and article.published[:10] < since.isoformat():
            older.append(article)
            continue
        fresh.append(article)
    cut = len(fresh) if limit is None else limit
    return Selection(
        chosen=fresh[:cut], repeats=repeats, twice=twice, older=older, over_limit=fresh[cut:]
    )


def parse_since(text: str, *, today: date, last_issue: str | None) -> date | None:
    """``--since`` as written -> the first publication date to keep, or None for all.

    ``last`` is the date of the last issue composed (None before the first one).
    Raises NewsletterError naming the accepted forms for anything else.
    """
    value = text.strip().lower()
    if value == "last":
        return date.fromisoformat(last_issue) if last_issue else None
    if match := _AGO.match(value):
        days = int(match[1]) * (7 if match[2].lower() == "w" else 1)
        return today - timedelta(days=days)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise NewsletterError(
            f"--since {text!r} is not a date", hint=f"accepted forms: {SINCE_FORMS}"
        ) from None


def issue_folders(ws: Workspace) -> list[Path]:
    """The folders under the issues folder that hold an issue.json, by name."""
    if not ws.issues_dir.is_dir():
        return []
    return sorted(path.parent for path in ws.issues_dir.glob(f"*/{ISSUE_JSON}"))


def _backfill(ws: Workspace, store: Store, recorded: set[str]) -> None:
    """Record the teasers of issue folders that have no record yet (composed before
    records were kept, or written by hand); an unreadable one is logged and left out."""
    from newsletter.store.featured import record_featured

    for folder in issue_folders(ws):
        key = issue_key(ws, folder)
        if key in recorded:
            continue
        try:
            issue = decode_issue(read_issue_bytes(folder), folder / ISSUE_JSON)
        except NewsletterError as exc:
            log.warning("%s: not counted as featured: %s", folder, exc)
            continue
        record_featured(store, key, issue.date, issue_keys(issue))


def featured_before(ws: Workspace) -> tuple[set[str], str | None]:
    """Every key featured by an earlier issue of the workspace (issue folders without a
    record are read once and recorded first) -> (keys, date of the last issue or None)."""
    from newsletter.store import open_store_for
    from newsletter.store.featured import featured_keys, last_issue_date, recorded_issues

    with open_store_for(ws) as store:
        _backfill(ws, store, recorded_issues(store))
        return featured_keys(store), last_issue_date(store)


def remember_issue(ws: Workspace, folder: Path, issue: Issue, articles: Iterable[Article]) -> None:
    """Record what the issue in ``folder`` features (the articles' URL, GUID and title keys,
    and its teasers' as written), so no later selection features them again."""
    from newsletter.store import open_store_for
    from newsletter.store.featured import record_featured

    keys = issue_keys(issue).union(
        *(article_keys(article.url, article.title, article.guid) for article in articles)
    )
    with open_store_for(ws) as store:
        record_featured(store, issue_key(ws, folder), issue.date, keys)


def nothing_new(selection: Selection, sources: list[str]) -> SourceError:
    """The error for a selection that kept no article: what was left out and why."""
    parts = []
    if selection.repeats:
        parts.append(f"{len(selection.repeats)} featured in an earlier issue")
    if selection.older:
        parts.append(f"{len(selection.older)} older than --since")
    return SourceError(
        "no new article in " + ", ".join(sources) + (f" ({'; '.join(parts)})" if parts else ""),
        hint="add sources, widen --since, or pass --allow-repeats to feature old ones again",
    )
