"""Headlines: strip site names off page titles, pick the best candidate, or make one up.

Page titles carry the site: "Harbour strike ends | The Coast Courier", "The Coast
Courier - Harbour strike ends". Open Graph titles and the page's h1 usually do not.
In: candidate strings and what we know of the site (name, host). Out: one headline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from newsletter.compose.ingest.boilerplate import normalise_space, word_count

# Separators between a headline and a site or section name, strongest first.
_STRONG_SEPARATORS = (" | ", " || ", " :: ", " · ", " • ", " » ", " « ", " ‹ ", " › ")
_WEAK_SEPARATORS = (" - ", " – ", " — ", ": ")
_MAX_SITE_WORDS = 6
_TITLE_WORDS = 14


def _key(text: str) -> str:
    """Letters and digits only, lower case, without a leading "the" or "www"."""
    key = re.sub(r"[\W_]+", "", text).casefold()
    for prefix in ("www", "the"):
        if key.startswith(prefix) and len(key) > len(prefix) + 2:
            key = key[len(prefix) :]
    return key


def site_keys(names: Iterable[str], hostname: str = "") -> set[str]:
    """Comparable forms of a site's names and host ("www.coast-courier.com" -> "coastcourier")."""
    keys = {_key(name) for name in names if name and _key(name)}
    host = hostname.lower().removeprefix("www.")
    if host:
        labels = host.split(".")
        main = labels[-2] if len(labels) >= 2 else labels[0]
        keys.add(_key(main))
        keys.add(_key(host))
    return {key for key in keys if len(key) >= 2}


def _is_site(part: str, sites: set[str]) -> bool:
    key = _key(part)
    if not key:
        return False
    return any(key == site or (len(site) >= 4 and (site in key or key in site)) for site in sites)


def strip_site_name(title: str, sites: set[str], *, headline_hints: Sequence[str] = ()) -> str:
    """``title`` without a leading or trailing site (or section) name.

    A part is stripped when it names the site, when it is what is left beside a known
    headline (``headline_hints``, e.g. the page's h1), or when a strong separator
    ("|", "·") sets off a short tail. A weak separator (" - ", ": ") alone is not enough:
    "Talks stall - again" keeps its tail.
    """
    title = normalise_space(title)
    hints = {_key(hint) for hint in headline_hints if hint}
    changed = True
    while changed:
        changed = False
        for separator in _STRONG_SEPARATORS + _WEAK_SEPARATORS:
            if separator not in title:
                continue
            stripped = _strip_once(title, separator, sites, hints)
            if stripped != title:
                title, changed = stripped, True
                break
    return title


def _strip_once(title: str, separator: str, sites: set[str], hints: set[str]) -> str:
    head, _, tail = title.rpartition(separator)
    first, _, rest = title.partition(separator)
    if _key(head) in hints:
        return head.strip()
    if _key(rest) in hints:
        return rest.strip()
    if word_count(first) <= _MAX_SITE_WORDS and _is_site(first, sites):
        return rest.strip()
    if word_count(tail) <= _MAX_SITE_WORDS and _is_site(tail, sites):
        return head.strip()
    if separator in _STRONG_SEPARATORS:
        # With no site name to go by, a short part beside a much longer one is the site
        # (or section): "Headline | Local", "Harbour Gazette :: Headline".
        if word_count(tail) <= _MAX_SITE_WORDS and word_count(head) > word_count(tail):
            return head.strip()
        if word_count(first) <= _MAX_SITE_WORDS and word_count(rest) >= 2 * word_count(first):
            return rest.strip()
    return title


def choose_title(
    *,
    meta_title: str,
    headings: Sequence[str],
    document_title: str,
    sites: set[str],
) -> str:
    """The headline of a web page.

    In: the Open Graph / JSON-LD title, the page's h1 texts (article ones first) and
    the ``<title>``. An h1 that matches one of the others (once site names are
    stripped) is the cleanest form; else the meta title, then the <title>, each with
    the site name stripped; else the first h1 that is not the site's name. Out: the
    headline, or "".
    """
    headings = [normalise_space(h) for h in headings if word_count(h) >= 2]
    meta = strip_site_name(meta_title, sites, headline_hints=headings) if meta_title else ""
    document = (
        strip_site_name(document_title, sites, headline_hints=headings) if document_title else ""
    )
    for heading in headings:
        if _is_site(heading, sites) and word_count(heading) <= _MAX_SITE_WORDS:
            continue
        key = _key(heading)
        if any(candidate and key == _key(candidate) for candidate in (meta, document)):
            return heading
    if meta and not _is_site(meta, sites):
        return meta
    if document and not _is_site(document, sites):
        return document
    real_headings = [h for h in headings if not _is_site(h, sites)]
    return real_headings[0] if real_headings else meta or document


def title_from_text(text: str) -> str:
    """A stand-in headline from prose: its first sentence, cut to about 14 words."""
    first = re.split(r"(?<=[.!?])\s+", normalise_space(text), maxsplit=1)[0]
    words = first.split()
    if len(words) <= _TITLE_WORDS:
        return first.rstrip(".")
    return " ".join(words[:_TITLE_WORDS]).rstrip(",;:") + "…"
