"""Find a page's standfirst: the publisher's own one- or two-sentence summary under the headline.

News sites call it the standfirst, magazines the dek, blogs the subtitle or lead. It
sits between the headline and the body, among the byline, date and lead picture, and is
marked by its class, id or itemprop ("standfirst", "dek", "subtitle", "summary",
"lede"/"lead", itemprop="description"), or by its place: an h2 or a classed <p> right
after the h1. The meta description (og:description) is not a standfirst: it is not on
the page, and it is often site-wide or cut off.

In: the parsed page and one headline element. Out: the standfirst's text, or "".
"""

from __future__ import annotations

import re

from lxml.html import HtmlElement

from newsletter.compose.ingest.boilerplate import is_boilerplate, normalise_space, same_text

# Class, id and itemprop words that mark a standfirst ("article-summary", "pw-subtitle-paragraph").
_MARK_WORDS = frozenset(
    {"standfirst", "dek", "subtitle", "subheadline", "summary", "lede", "lead", "strapline"}
)
_MARK_ITEMPROPS = frozenset({"description", "abstract", "alternativeheadline"})
# Blocks whose text is never a standfirst and never the start of the body.
_SKIPPED = frozenset(
    {"figure", "figcaption", "script", "style", "noscript", "nav", "aside", "footer", "form"}
    | {"button", "time", "address", "template", "svg", "iframe", "table"}
)
_BLOCKS = frozenset({"p", "h2", "h3", "h4", "div", "span", "section", "header", "blockquote"})
_CONTAINERS = frozenset({"p", "div", "section", "header", "article", "ul", "ol", "h2", "h3", "h4"})
# How many text blocks after the headline may come before we stop looking: byline,
# date, rubric and credits take a few.
_MAX_BLOCKS = 8


def find_standfirst(tree: HtmlElement, headline: HtmlElement) -> str:
    """The standfirst under ``headline`` in ``tree`` (see module docstring), else "".

    Walks the text blocks after the headline in page order, past furniture (byline,
    date, short labels): the first prose block is the standfirst when it is marked as
    one or placed as one, else it is the body's first paragraph and there is none.
    """
    title = normalise_space(headline.text_content())
    for seen, block in enumerate(_blocks_after(tree, headline)):
        if seen >= _MAX_BLOCKS:
            return ""
        text = normalise_space(block.text_content())
        if not text or same_text(text, title) or is_boilerplate(text):
            continue
        if _marked(block) or _placed(block, headline):
            return text
        return ""
    return ""


def _blocks_after(tree: HtmlElement, headline: HtmlElement) -> list[HtmlElement]:
    """The innermost text blocks that follow ``headline`` in page order (not inside it)."""
    found: list[HtmlElement] = []
    after = False
    skip_until: HtmlElement | None = None
    inside_headline = set(headline.iter())
    for element in tree.iter():
        if element is headline:
            after = True
            continue
        if not after or element in inside_headline or not isinstance(element.tag, str):
            continue
        if skip_until is not None and _is_inside(element, skip_until):
            continue
        skip_until = None
        tag = element.tag.lower()
        if tag in _SKIPPED or _is_furniture_box(element):
            skip_until = element
            continue
        if tag in _BLOCKS and not any(
            isinstance(child.tag, str) and child.tag.lower() in _CONTAINERS for child in element
        ):
            found.append(element)
            skip_until = element
        if len(found) > _MAX_BLOCKS:
            break
    return found


def _is_inside(element: HtmlElement, ancestor: HtmlElement) -> bool:
    return any(parent is ancestor for parent in element.iterancestors())


def _is_furniture_box(element: HtmlElement) -> bool:
    """A related-stories, share or newsletter box: its summaries are other articles'."""
    words = _words(element.get("class", "")) | _words(element.get("id", ""))
    return bool(words & {"related", "share", "social", "newsletter", "promo", "card", "teaser"})


def _words(attribute: str) -> set[str]:
    """The lower-case words of a class or id: "pw-subtitle-paragraph" -> {pw, subtitle, ...}."""
    return set(re.split(r"[\s_-]+", attribute.casefold())) - {""}


def _marked(block: HtmlElement) -> bool:
    """True when the block or its parent is marked as a standfirst by class, id or itemprop."""
    for element in (block, block.getparent()):
        if element is None:
            continue
        words = _words(element.get("class", "")) | _words(element.get("id", ""))
        itemprop = element.get("itemprop", "").casefold()
        if words & _MARK_WORDS or itemprop in _MARK_ITEMPROPS:
            return True
    return False


def _placed(block: HtmlElement, headline: HtmlElement) -> bool:
    """True for an h2/h3, or a <p> with a class, that directly follows the headline."""
    if block.getprevious() is not headline:
        return False
    tag = str(block.tag).lower()
    return tag in {"h2", "h3"} or (tag == "p" and bool(block.get("class", "").strip()))
