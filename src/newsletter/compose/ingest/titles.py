"""Headlines: strip site names off page titles, pick the best candidate, or make one up.

Page titles carry the site: "Harbour strike ends | The Coast Courier", "The Coast
Courier - Harbour strike ends". Open Graph titles and the page's h1 usually do not.
In: candidate strings and what we know of the site (name, host). Out: one headline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from newsletter.compose.ingest.boilerplate import (
    byline_of,
    ends_like_sentence,
    normalise_space,
    word_count,
)

# Separators between a headline and a site or section name, strongest first.
_STRONG_SEPARATORS = (" | ", " || ", " :: ", " · ", " • ", " » ", " « ", " ‹ ", " › ")
_WEAK_SEPARATORS = (" - ", " – ", " — ", ": ")
_MAX_SITE_WORDS = 6
_MAX_NAME_WORDS = 4
_TITLE_WORDS = 14
# Words a site's name adds to its brand ("Acme Robotics Newsroom", "Gearbox 3.2
# documentation"): left over beside the site's own key, they still make the site.
_SITE_EXTRAS = re.compile(
    r"(?:\d+|blogs?|news|newsroom|tech|technology|engineering|eng|magazine|mag|online|daily"
    r"|weekly|digital|media|press|docs|documentation|developers?|dev|help|support|centre"
    r"|center|community|official|website|site|home|com|org|net|io|co|uk|www|hq|labs?"
    r"|research|stories|insights|journal|edition|international|global|group|inc|ltd|llc)+"
)
# Second-level labels of country domains: "coastcourier.co.uk" is "coastcourier".
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ltd", "plc"})
# Words a name may hold in lower case: "Department of Energy", "Marks and Spencer".
_NAME_JOINERS = frozenset({"of", "and", "&", "the", "for", "de", "la", "le", "van", "von", "der"})
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)+")


def _key(text: str) -> str:
    """Letters and digits only, lower case, without a leading "the" or "www"."""
    key = re.sub(r"[\W_]+", "", text).casefold()
    for prefix in ("www", "the"):
        if key.startswith(prefix) and len(key) > len(prefix) + 2:
            key = key[len(prefix) :]
    return key


def site_keys(names: Iterable[str], hostname: str = "") -> set[str]:
    """Comparable forms of a site's names and host ("www.coast-courier.co.uk" -> "coastcourier").

    A host's first label counts too when it is not a generic one, because hosted sites
    are named there: "gearbox.readthedocs.io", "supplyside.substack.com".
    """
    keys = {_key(name) for name in names if name and _key(name)}
    host = hostname.lower().removeprefix("www.")
    if host:
        labels = host.split(".")
        if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL:
            labels = labels[:-1]
        keys.add(_key(labels[-2] if len(labels) >= 2 else labels[0]))
        if len(labels) >= 3 and not _SITE_EXTRAS.fullmatch(_key(labels[0])):
            keys.add(_key(labels[0]))
        keys.add(_key(host))
    return {key for key in keys if len(key) >= 2}


def _is_site(part: str, sites: set[str]) -> bool:
    """True when ``part`` is the site's name: a key of it, maybe with brand words around.

    A headline that merely mentions the site ("How we designed Relay's ATF") is not it.
    """
    key = _key(part)
    if not key:
        return False
    for site in sites:
        if key == site or (len(key) >= 4 and key in site):
            return True
        if len(site) >= 3 and (key.startswith(site) or key.endswith(site)):
            rest = key.removeprefix(site) if key.startswith(site) else key.removesuffix(site)
            if _SITE_EXTRAS.fullmatch(rest):
                return True
    return False


def _is_person(part: str, people: set[str]) -> bool:
    """True when ``part`` is a byline ("by Ana Ruiz") or names one of the article's authors."""
    return bool(byline_of(part)) or (bool(_key(part)) and _key(part) in people)


def _name_like(part: str, *, min_words: int = 1) -> bool:
    """True for a short proper name ("Local", "The Coast Courier", "eHow", "coastcourier.com").

    Not for a title-case subtitle: one opening with "A"/"An" or holding a number
    ("An Async Task Framework", "Part 2") reads as part of the headline.
    """
    part = part.strip()
    words = part.split()
    if _DOMAIN.fullmatch(part):
        return True
    if not min_words <= len(words) <= _MAX_NAME_WORDS or ends_like_sentence(part):
        return False
    if words[0].casefold() in {"a", "an"} or any(char.isdigit() for char in part):
        return False
    return all(
        any(char.isupper() for char in word) or (index > 0 and word.casefold() in _NAME_JOINERS)
        for index, word in enumerate(words)
    )


def strip_site_name(
    title: str,
    sites: set[str],
    *,
    headline_hints: Sequence[str] = (),
    authors: Sequence[str] = (),
) -> str:
    """``title`` without a leading or trailing site, section or author name.

    A part is dropped only when it is recognisably not the headline: it names the site
    (``sites``, see ``site_keys``) or one of the ``authors`` (or is a "by ..." byline);
    it is what is left beside a known headline (``headline_hints``, e.g. the page's h1);
    or it is a short proper name at the end ("| Local", " - Jane Doe"; with " - " at
    least two words). Anything else keeps the whole title: "How we designed Relay's
    ATF - an async task framework", "Talks stall - again", "Kenya: floods displace...".
    """
    title = normalise_space(title)
    hints = {_key(hint) for hint in headline_hints if hint}
    people = {_key(author) for author in authors if _key(author)}
    changed = True
    while changed:
        changed = False
        for separator in _STRONG_SEPARATORS + _WEAK_SEPARATORS:
            if separator not in title:
                continue
            stripped = _strip_once(title, separator, sites, hints, people)
            if stripped != title:
                title, changed = stripped, True
                break
    return title


def _strip_once(
    title: str, separator: str, sites: set[str], hints: set[str], people: set[str]
) -> str:
    head, _, tail = title.rpartition(separator)
    first, _, rest = title.partition(separator)
    if _key(head) in hints:
        return head.strip()
    if _key(rest) in hints:
        return rest.strip()
    if word_count(first) <= _MAX_SITE_WORDS and (
        _is_site(first, sites) or _is_person(first, people)
    ):
        return rest.strip()
    if word_count(tail) <= _MAX_SITE_WORDS and (_is_site(tail, sites) or _is_person(tail, people)):
        return head.strip()
    if separator == ": ":
        return title
    longer_head = word_count(head) >= word_count(tail)
    if separator in _STRONG_SEPARATORS:
        # "Headline | Local", and a section label before it: "Opinion | Headline"
        if longer_head and _name_like(tail):
            return head.strip()
        if word_count(rest) >= 2 * word_count(first) and _name_like(first):
            return rest.strip()
        return title
    return head.strip() if longer_head and _name_like(tail, min_words=2) else title


def choose_title(
    *,
    meta_title: str,
    headings: Sequence[str],
    document_title: str,
    sites: set[str],
    authors: Sequence[str] = (),
) -> str:
    """The headline of a web page.

    In: the Open Graph / JSON-LD title, the page's h1 texts (article ones first),
    the ``<title>``, the site's keys and the article's authors. An h1 that matches one
    of the others (once site and author names are stripped) is the cleanest form; else
    the meta title, then the <title>, each stripped; else the first h1 that is not the
    site's name. Out: the headline, or "".
    """
    headings = [normalise_space(h) for h in headings if word_count(h) >= 2]
    meta, document = (
        strip_site_name(title, sites, headline_hints=headings, authors=authors) if title else ""
        for title in (meta_title, document_title)
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
