"""Teasers: the lead sentences of an article, fitted to a word budget. Offline, extractive.

Cleaning comes first, because it matters most: title repeats, photo credits,
"Subscribe..." and short unpunctuated lines (labels, buttons, subheads) never reach a
teaser. Sentences are split by pysbd, so "U.S.", "Inc." and "Dr." do not end one.
Whole lead sentences are added while the teaser is under ``min_words``, and never past
``max_words`` - unless the first sentence alone is longer, which is then cut at a word
boundary near ``max_words`` and ends with "…". A summary the source gave (front matter,
a feed's own prose summary, or an edited issue.json) always wins; next comes the
publisher's standfirst when it fits the budget (see ``fitting_standfirst``).

In: an ``Article`` (or text). Out: a ``Teaser`` (or the teaser text).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator
from functools import lru_cache

import pysbd

from newsletter.compose.ingest.boilerplate import (
    clean_paragraphs,
    is_boilerplate,
    normalise_space,
    word_count,
)
from newsletter.models import Article, Teaser

log = logging.getLogger(__name__)

ELLIPSIS = "…"
# Words a cut sentence should not end on: "... talks with the…" reads broken.
_DANGLING = frozenset(
    re.findall(
        r"\S+",
        "a an the and or but nor of to in on at by for from with as than that which who "
        "whose its their his her our your my this these those is are was were be been",
    )
)
_WINDOW_WORDS = 250
_CLAUSE_END = re.compile(r"[,;:)\]–—]$")
# A wire dateline opening the first sentence: "LONDON (Reuters) - ", "KYIV, Ukraine (AP) — ".
# It is the article's, not the teaser's: publishers leave it out of their own teasers.
_WIRE_DATELINE = re.compile(
    r"^(?:[A-Z]{2,}[A-Z.'-]*(?:[ ,]+[A-Z0-9][\w.'-]*){0,4}\s*)?"  # LONDON / KYIV, Ukraine
    r"(?:\([^)]{1,30}\)\s*)?"  # (Reuters)
    r"[-–—]{1,2}\s+(?=\S)"
)


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    """One pysbd segmenter for the process (building one compiles its rules)."""
    return pysbd.Segmenter(language="en", clean=False)


def make_teaser(
    article: Article,
    *,
    min_words: int = 40,
    max_words: int = 60,
    writer: Callable[[Article], str] | None = None,
) -> Teaser:
    """The Teaser for ``article``: its given summary if any, else its standfirst when it
    fits the budget (both are the publisher's own words), else what ``writer`` (the
    optional LLM, compose/llm.py) returns for it, else (on "") its lead sentences."""
    summary = (
        normalise_space(article.summary)
        or fitting_standfirst(article.standfirst, min_words=min_words, max_words=max_words)
        or (writer(article) if writer is not None else "")
        or summarize(article.text, min_words=min_words, max_words=max_words, title=article.title)
    )
    if not summary:
        log.warning("%s: no sentence fit for a teaser; the summary is empty", article.source)
    title = normalise_space(article.title)
    return Teaser(
        title=title,
        summary=summary,
        url=article.url,
        image=article.image,
        image_alt=normalise_space(article.image_alt) or (title if article.image else ""),
        byline=article.byline,
        published=article.published,
        source=article.source,
    )


def fitting_standfirst(standfirst: str, *, min_words: int, max_words: int) -> str:
    """``standfirst`` when it fits the budget, else "".

    It fits with at most ``max_words`` words and at least a third of ``min_words``: it
    is the publisher's whole summary, so it is never cut or padded with lead sentences
    (the lead mostly repeats it), and anything shorter is a label, not a summary.
    """
    standfirst = normalise_space(standfirst)
    return standfirst if math.ceil(min_words / 3) <= word_count(standfirst) <= max_words else ""


def summarize(text: str, *, min_words: int = 40, max_words: int = 60, title: str = "") -> str:
    """The lead sentences of ``text`` within ``min_words``..``max_words`` (see module doc).

    In: article text (paragraphs separated by newlines), the budget, and the title (so
    a repeat of it is not taken as the first sentence). Out: the teaser; the whole
    cleaned text when it is shorter than ``min_words``; "" when no prose is left.
    """
    if not 0 < min_words <= max_words:
        raise ValueError(f"need 0 < min_words <= max_words, got {min_words}..{max_words}")
    chosen: list[str] = []
    count = 0
    for sentence in lead_sentences(text, title=title):
        words = word_count(sentence)
        if not chosen and words > max_words:
            return trim_to_words(sentence, max_words)
        if count + words > max_words:
            break
        chosen.append(sentence)
        count += words
        if count >= min_words:
            break
    return " ".join(chosen)


def lead_sentences(text: str, *, title: str = "") -> Iterator[str]:
    """The sentences of ``text`` in order, boilerplate and title repeats left out.

    Lazy: paragraphs are split only as far as the caller reads, so a long article
    costs no more than its lead.
    """
    lines = text.splitlines()
    paragraphs = clean_paragraphs(lines, title=title).paragraphs
    for index, paragraph in enumerate(paragraphs):
        if index == 0:
            paragraph = _WIRE_DATELINE.sub("", _without_leading_title(paragraph, title))
        for raw in _sentences(paragraph):
            sentence = normalise_space(raw)
            if sentence and not is_boilerplate(sentence):
                yield sentence


def _sentences(paragraph: str, window: int = _WINDOW_WORDS) -> Iterator[str]:
    """pysbd's sentences of ``paragraph``, segmenting ``window`` words at a time.

    pysbd's cost grows with the text it is given; a scrape can be one 5,000-word
    paragraph of which the teaser needs the first 60. The last sentence of a window may
    be cut off, so it is carried into the next window rather than yielded.
    """
    words = paragraph.split()
    carry = ""
    for start in range(0, len(words), window):
        last = start + window >= len(words)
        chunk = " ".join(words[start : start + window])
        parts = _segmenter().segment(f"{carry} {chunk}".strip())
        carry = "" if last or not parts else parts.pop()
        yield from parts


def _without_leading_title(paragraph: str, title: str) -> str:
    """``paragraph`` minus the title when it starts with it (scrapes glue them together)."""
    title = normalise_space(title)
    if title and paragraph.casefold().startswith(title.casefold()):
        rest = paragraph[len(title) :].lstrip(" .:—–-|")
        if word_count(rest) >= 3:
            return rest
    return paragraph


def trim_to_words(sentence: str, max_words: int) -> str:
    """``sentence`` cut to at most ``max_words`` words, at a clause end if one is near, + "…"."""
    words = sentence.split()[:max_words]
    floor = max(1, math.ceil(max_words * 0.75))
    for end in range(len(words), floor - 1, -1):
        if _CLAUSE_END.search(words[end - 1]):
            words = words[:end]
            break
    while len(words) > 1 and words[-1].strip(",;:()[]–—-").lower() in _DANGLING:
        words.pop()
    last = words[-1].rstrip(",;:([–—-") or words[-1]
    return " ".join([*words[:-1], last]) + ELLIPSIS
