"""The faithfulness check a machine-written teaser must pass before it is used.

A teaser may only state what its article states. Three kinds of claim are easy to
get wrong and easy to check, so every one of them in the teaser must be found in the
article (title and text):

- numbers (digits: ``1,200``, ``3.5``, ``40%``); ``1,200`` and ``1200`` are the same;
- dates (``12 March 2026``, ``March 12``, ``2026-03-12``), compared as day and month
  (and year when both give one), whatever the format;
- capitalised names: a capitalised word not at a sentence start, and any run of two or
  more capitalised words (a run at a sentence start may also match without its first
  word, which is then just the sentence's capital).

Comparison is on normalised words: case, accents, possessive ``'s`` and the dots of
``U.S.`` are ignored, and a name must match whole words (``Ham`` is not in ``Hamas``).
Paraphrased names fail the check; that is the safe side, as the extractive lead is the
fallback.

In: the teaser text and the article's title and text. Out: a ``Verdict`` listing the
unsupported words (none: faithful).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_MONTH = (
    r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_ORDINAL = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(\d{4}))?(?!\d)"
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_DAY_MONTH = re.compile(rf"(?<![\w.])(\d{{1,2}}){_ORDINAL}\s+(?:of\s+)?{_MONTH}(?!\w){_YEAR}")
_MONTH_DAY = re.compile(rf"(?<!\w){_MONTH}\s+(\d{{1,2}}){_ORDINAL}(?!\w){_YEAR}")
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_ABBREVIATION = re.compile(r"\b(?:[A-Z]\.){2,}")
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")
_WORD = re.compile(r"\w+")
# a sentence ends at . ! ? or … followed by space (closing quotes and brackets allowed)
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"”’»)\]]*\s+")
_EDGE_PUNCTUATION = "\"'“”‘’«»()[]{}"
_RUN_BREAK = re.compile(r"[,;:.!?…)\]\"”’»]$")

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

Date = tuple[int | None, int, int]


@dataclass(frozen=True)
class Verdict:
    """The check's result: the teaser's ``unsupported`` words (in teaser order)."""

    unsupported: tuple[str, ...] = ()

    @property
    def faithful(self) -> bool:
        """True when every number, date and name of the teaser is in the article."""
        return not self.unsupported


def check_teaser(teaser: str, *, title: str, text: str) -> Verdict:
    """Check ``teaser`` against its article (``title`` and ``text``): see module doc."""
    source = f"{title}\n{text}"
    article_words = f" {' '.join(_words(source))} "
    article_numbers = {_number_key(found) for found in _NUMBER.findall(source)}
    article_dates = _dates(source)
    unsupported: list[str] = []
    rest = teaser
    for match, day in _date_matches(teaser):
        if not _date_supported(day, article_dates, article_numbers):
            unsupported.append(match)
        rest = rest.replace(match, " " * len(match), 1)
    for number in _NUMBER.findall(rest):
        if _number_key(number) not in article_numbers:
            unsupported.append(number)
    for name, at_start in _names(rest):
        if not _name_supported(name, at_start, article_words):
            unsupported.append(name)
    return Verdict(tuple(dict.fromkeys(unsupported)))


def _number_key(number: str) -> str:
    """``1,200`` -> ``1200``; leading zeros dropped, so ``09`` matches ``9``."""
    if _THOUSANDS.match(number):
        number = number.replace(",", "")
    head, dot, tail = number.partition(".")
    return (head.lstrip("0") or "0") + dot + tail


def _month(name: str) -> int:
    """``"Sept"`` -> 9."""
    return _MONTHS.index(name[:3].lower()) + 1


def _date_matches(text: str) -> list[tuple[str, Date]]:
    """Each date written in ``text``: (its text, (year or None, month, day))."""
    found: list[tuple[str, Date]] = []
    for match in _ISO_DATE.finditer(text):
        year, month, day = (int(part) for part in match.groups())
        found.append((match.group(), (year, month, day)))
    for match in _DAY_MONTH.finditer(text):
        day_text, month_text, year_text = match.groups()
        date = (int(year_text) if year_text else None, _month(month_text), int(day_text))
        found.append((match.group(), date))
    for match in _MONTH_DAY.finditer(text):
        month_text, day_text, year_text = match.groups()
        date = (int(year_text) if year_text else None, _month(month_text), int(day_text))
        found.append((match.group(), date))
    return found


def _dates(text: str) -> set[Date]:
    """Every date written in ``text``, as (year or None, month, day)."""
    return {date for _, date in _date_matches(text)}


def _date_supported(date: Date, article: set[Date], numbers: set[str]) -> bool:
    """The same day and month in the article, in a year it gives (or states elsewhere)."""
    year, month, day = date
    for other_year, other_month, other_day in article:
        if (other_month, other_day) != (month, day):
            continue
        if year is None or other_year == year:
            return True
        if other_year is None and str(year) in numbers:
            return True
    return False


def _words(text: str) -> list[str]:
    """``text`` as normalised words: no accents, case or possessives; ``U.S.`` -> ``us``."""
    text = _ABBREVIATION.sub(lambda match: match.group().replace(".", ""), text)
    text = _POSSESSIVE.sub("", unicodedata.normalize("NFKC", text))
    plain = "".join(
        char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char)
    )
    return _WORD.findall(plain.casefold())


def _is_capitalised(word: str) -> bool:
    """Whether ``word``'s first letter or digit is a capital (never the pronoun "I")."""
    letters = [char for char in word if char.isalnum()]
    # "I" and "I'm" are capitalised in every sentence; they name nobody
    pronoun = word == "I" or word.startswith(("I'", "I’"))
    return bool(letters) and letters[0].isupper() and not pronoun


def _names(text: str) -> list[tuple[str, bool]]:
    """The capitalised runs of ``text``: (the run's words, whether it opens a sentence)."""
    names: list[tuple[str, bool]] = []
    for sentence in _SENTENCE_END.split(text):
        run: list[str] = []
        run_at_start = False
        for index, raw in enumerate(sentence.split()):
            word = raw.strip(_EDGE_PUNCTUATION)
            if _is_capitalised(word):
                if not run:
                    run_at_start = index == 0
                run.append(word if _ABBREVIATION.fullmatch(word) else word.rstrip(",;:.!?…"))
            if run and (not _is_capitalised(word) or _RUN_BREAK.search(raw)):
                names.append((" ".join(run), run_at_start))
                run = []
        if run:
            names.append((" ".join(run), run_at_start))
    return [(name, at_start) for name, at_start in names if not (at_start and " " not in name)]


def _name_supported(name: str, at_start: bool, article_words: str) -> bool:
    """``name`` as whole words in the article; a sentence-opening run may drop its first."""
    words = _words(name)
    if not words or f" {' '.join(words)} " in article_words:
        return True
    return at_start and len(words) > 1 and f" {' '.join(words[1:])} " in article_words
