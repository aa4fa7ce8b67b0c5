"""Read a plain-text scrape: text copied out of a web page, furniture and all.

A scrape is lines: a breadcrumb, maybe a section label, the headline, a photo
credit, a byline and date, paragraphs, then "Subscribe to our newsletter" and the
comments. The headline is the first line that reads like one (3-30 words, not ending
in a full stop, not furniture); the text is the prose lines after it.

In: the decoded text and its source name. Out: one ``Article`` (its link from a line that
holds only an address, if there is one).
"""

from __future__ import annotations

import logging
import re

from newsletter.compose.ingest.boilerplate import (
    LineKind,
    classify,
    clean_paragraphs,
    normalise_space,
    word_count,
)
from newsletter.compose.ingest.fields import iso_date
from newsletter.compose.ingest.titles import title_from_text
from newsletter.errors import SourceError
from newsletter.models import Article

log = logging.getLogger(__name__)

_SKIPPED_BEFORE_TITLE = {LineKind.FURNITURE, LineKind.BREADCRUMB, LineKind.CREDIT, LineKind.END}
_WRAP_MIN, _WRAP_MAX = 45, 100
_LABEL_WORDS = 4
_URL_LINE = re.compile(r"^\s*<?https?://[^\s<>]+>?\s*$", re.IGNORECASE)


def read_text(content: str, source: str) -> Article:
    """Build an Article from a plain-text scrape; ``SourceError`` when it holds no prose.

    A line holding nothing but an http(s) address (as copied from the address bar) is
    the article's link, not text.
    """
    lines = split_lines(content)
    url = next((line.strip().strip("<>") for line in lines if _URL_LINE.match(line)), "")
    lines = [line for line in lines if not _URL_LINE.match(line)]
    title_index = find_title_line(lines)
    before = lines[:title_index] if title_index is not None else []
    after = lines[title_index + 1 :] if title_index is not None else lines
    title = normalise_space(lines[title_index]) if title_index is not None else ""
    cleaned = clean_paragraphs(after, title=title)
    front = clean_paragraphs(before, stop_at_end=False)
    if not cleaned.paragraphs:
        raise SourceError(
            f"no article text found in {source}",
            hint="the file needs at least one paragraph of prose",
        )
    if not title:
        title = title_from_text(cleaned.paragraphs[0])
        log.warning("%s has no headline line; using its first sentence as the title", source)
    return Article(
        title=title,
        text="\n\n".join(cleaned.paragraphs),
        source=source,
        url=url,
        byline=cleaned.byline or front.byline,
        published=iso_date(cleaned.dateline or front.dateline),
    )


def split_lines(content: str) -> list[str]:
    """Non-empty lines of ``content``, with hard-wrapped paragraphs joined back together.

    A block (lines between blank lines) whose lines all but the last are 45-100
    characters long was wrapped by an editor, not written line by line: it is one
    paragraph. Blocks of long lines, or of short ones, keep their lines.
    """
    out: list[str] = []
    for block in content.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        block_lines = [line.strip() for line in block.split("\n") if line.strip()]
        if (
            len(block_lines) > 1
            and all(_WRAP_MIN <= len(line) <= _WRAP_MAX for line in block_lines[:-1])
            and len(block_lines[-1]) <= _WRAP_MAX
        ):
            out.append(" ".join(block_lines))
        else:
            out.extend(block_lines)
    return out


def find_title_line(lines: list[str]) -> int | None:
    """Index of the headline among ``lines``, or None when prose comes first."""
    for index, line in enumerate(lines):
        kind = classify(line)
        if kind in _SKIPPED_BEFORE_TITLE or kind in {LineKind.BYLINE, LineKind.DATELINE}:
            continue
        words = word_count(line)
        stripped = line.rstrip()
        if words < 3 and kind is LineKind.SHORT:
            continue  # a section label such as "World" or "Opinion"
        if words <= 30 and not stripped.endswith("."):
            return _past_section_label(lines, index)
        return None  # a paragraph came first: the scrape has no headline line
    return None


def _past_section_label(lines: list[str], index: int) -> int:
    """``index``, or the next line's when ``lines[index]`` is a short label over a headline.

    "Middle East Crisis" above "Ceasefire talks resume in Cairo as convoys wait" is a
    section or story label: labels run to four words, headlines are longer.
    """
    if word_count(lines[index]) > _LABEL_WORDS:
        return index
    for following in range(index + 1, min(index + 4, len(lines))):
        line = lines[following]
        kind = classify(line)
        if kind in _SKIPPED_BEFORE_TITLE:
            continue
        words = word_count(line)
        if words > _LABEL_WORDS and words <= 30 and not line.rstrip().endswith("."):
            return following
        break
    return index
