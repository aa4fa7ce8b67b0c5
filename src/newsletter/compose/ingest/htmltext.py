"""Turn a fragment of HTML (feed content, rendered Markdown) into paragraphs of text.

trafilatura is for whole pages; a feed entry or a rendered Markdown body is already
just the article, so it only needs its blocks turned into lines: each block element
(p, li, h1-h6, blockquote, ...) and each ``<br>`` ends a paragraph, scripts and
styles are dropped, whitespace is collapsed.

In: an HTML fragment (``str``) or a parsed element. Out: a list of paragraph strings.
"""

from __future__ import annotations

import re

from lxml import etree
from lxml.html import HtmlElement, fragment_fromstring

from newsletter.compose.ingest.boilerplate import normalise_space

_BLOCKS = frozenset(
    re.findall(
        r"\S+",
        "address article aside blockquote dd details div dl dt fieldset figcaption figure "
        "footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary "
        "table tbody td tfoot th thead tr ul",
    )
)
_SKIPPED = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg"})


def parse_fragment(fragment: str) -> HtmlElement:
    """Parse an HTML fragment into one ``<div>`` element holding it."""
    try:
        return fragment_fromstring(fragment or "", create_parent="div")
    except (etree.ParserError, ValueError):
        root = HtmlElement()
        root.tag = "div"
        root.text = fragment
        return root


def html_to_paragraphs(fragment: str | HtmlElement) -> list[str]:
    """The text of ``fragment``, one string per block, whitespace collapsed, empties dropped."""
    root = parse_fragment(fragment) if isinstance(fragment, str) else fragment
    lines: list[str] = []
    current: list[str] = []
    _walk(root, lines, current)
    _flush(lines, current)
    return lines


def html_to_text(fragment: str) -> str:
    """The text of ``fragment`` on one line (for titles and short summaries)."""
    if "<" not in fragment and "&" not in fragment:
        return normalise_space(fragment)
    return " ".join(html_to_paragraphs(fragment))


def _flush(lines: list[str], current: list[str]) -> None:
    text = normalise_space("".join(current))
    if text:
        lines.append(text)
    current.clear()


def _walk(element: etree._Element, lines: list[str], current: list[str]) -> None:
    tag = element.tag.lower() if isinstance(element.tag, str) else ""
    if tag == "br":
        _flush(lines, current)
    elif tag and tag not in _SKIPPED:
        block = tag in _BLOCKS
        if block:
            _flush(lines, current)
        if element.text:
            current.append(element.text)
        for child in element:
            _walk(child, lines, current)
        if block:
            _flush(lines, current)
    # The tail is text after the element, inside its parent: it is kept even when the
    # element itself (a comment, a script) is skipped.
    if element.tail:
        current.append(element.tail)
