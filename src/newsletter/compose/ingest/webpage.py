"""Read an HTML article page with trafilatura, with sturdier titles and image alt text.

trafilatura finds the article body, byline, date, canonical URL and lead image. Its
title is the Open Graph / JSON-LD one or a guess from the page; we check it against the
page's h1 and <title> and strip site names ("Headline | Site"), see ``titles``.

The page's meta description (og:description) is deliberately NOT kept as the
article's given summary: on news sites it is often site-wide boilerplate ("The latest
news from ..."), cut off mid-sentence, or written as click bait, and nothing on the
page tells a good one from a bad one. A standfirst printed under the headline (see
``standfirst``) is kept as ``Article.standfirst``: it is the publisher's own summary,
and the summariser uses it when it fits the word budget; else the teaser is the lead
sentences of the extracted text.

In: the decoded page, its source name and (for fetched pages) its final URL.
Out: one ``Article``; ``SourceError`` when the page holds no article text.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import trafilatura
from lxml.html import HtmlElement

from newsletter.compose.ingest.boilerplate import (
    clean_paragraphs,
    is_credit,
    normalise_space,
    same_text,
    word_count,
)
from newsletter.compose.ingest.fields import (
    absolute_url,
    is_local_reference,
    iso_date,
    join_names,
    web_url,
)
from newsletter.compose.ingest.standfirst import find_standfirst
from newsletter.compose.ingest.titles import choose_title, site_keys, title_from_text
from newsletter.errors import SourceError
from newsletter.models import Article

log = logging.getLogger(__name__)

MIN_ARTICLE_WORDS = 20


def read_html(page: str, source: str, *, url: str = "") -> Article:
    """Extract the article of one HTML page (see module docstring)."""
    tree = _parse(page)
    if tree is None:
        raise _no_article(source)
    facts = _page_facts(tree)
    document = trafilatura.bare_extraction(
        tree,
        url=url or None,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
        deduplicate=False,
    )
    if document is None or isinstance(document, dict) or not document.text:
        raise _no_article(source)
    page_url = document.url or facts.canonical or url
    # trafilatura's own title and site name are guesses when the page has no metadata
    # (it takes "Site" from "U.S. talks | Site" because the other part has a dot), so
    # they are used only when nothing the page states outright is there.
    sites = site_keys(facts.site_names, urlparse(page_url).hostname or "")
    authors = [*(document.author or "").split("; "), *facts.authors]
    title = choose_title(
        meta_title=facts.meta_title,
        headings=facts.headings,
        document_title=facts.document_title or document.title or "",
        sites=sites,
        authors=[author for author in authors if author],
    )
    cleaned = clean_paragraphs(document.text.split("\n"), title=title)
    if word_count(" ".join(cleaned.paragraphs)) < MIN_ARTICLE_WORDS:
        raise _no_article(source)
    title = title or title_from_text(cleaned.paragraphs[0])
    raw_image = document.image or facts.image
    if not url and is_local_reference(raw_image):
        image = raw_image.strip()  # a file beside the page on disk: see disk_images
    else:
        image = web_url(raw_image, page_url, where=f"{source}: image")
    return Article(
        title=title,
        text="\n\n".join(cleaned.paragraphs),
        source=source,
        url=absolute_url(page_url, url),
        image=image,
        image_alt=(_image_alt(facts, image, page_url) or title) if image else "",
        byline=join_names((document.author or "").split("; ")) or cleaned.byline,
        published=iso_date(document.date or ""),
        standfirst=next(
            (text for heading, text in facts.standfirsts if same_text(heading, title)), ""
        ),
    )


def _no_article(source: str) -> SourceError:
    return SourceError(
        f"no article text found in {source}",
        hint="is it an article page? save the page itself, or paste its text into a .txt file",
    )


def _parse(page: str) -> HtmlElement | None:
    """The page as an lxml tree, or None when there is no document in it."""
    if "<" not in page:
        return None
    try:
        tree = trafilatura.load_html(page)
    except ValueError:  # lxml refuses some byte-order and encoding oddities
        return None
    return tree if isinstance(tree, HtmlElement) else None


def _meta(tree: HtmlElement, *names: str) -> str:
    """The first non-empty <meta> content among ``names`` (property= or name=)."""
    for name in names:
        for value in tree.xpath(f'//meta[@property="{name}" or @name="{name}"]/@content'):
            if str(value).strip():
                return normalise_space(str(value))
    return ""


@dataclass
class PageFacts:
    """What we read off the page before trafilatura prunes its tree."""

    meta_title: str = ""
    headings: list[str] = field(default_factory=list)
    document_title: str = ""
    site_names: list[str] = field(default_factory=list)
    image: str = ""
    image_alt: str = ""
    canonical: str = ""
    authors: list[str] = field(default_factory=list)
    # (headline, standfirst under it) for every h1 that has one
    standfirsts: list[tuple[str, str]] = field(default_factory=list)
    # (src, alt, figure caption) of every image, in page order
    images: list[tuple[str, str, str]] = field(default_factory=list)


def _page_facts(tree: HtmlElement) -> PageFacts:
    """Titles (h1s inside the article first), standfirsts, site name, image, canonical URL."""
    headings: list[str] = []
    standfirsts: list[tuple[str, str]] = []
    for element in tree.xpath("//article//h1 | //main//h1 | //*[@role='main']//h1 | //h1"):
        # a trailing "¶" is a documentation generator's permalink, not the headline's
        text = normalise_space(element.text_content()).rstrip("¶ ")
        if text and text not in headings:
            headings.append(text)
            if standfirst := find_standfirst(tree, element):
                standfirsts.append((text, standfirst))
    document_title = tree.xpath("//title")
    images = []
    for img in tree.xpath("//img[@src]"):
        caption = img.xpath("ancestor::figure[1]//figcaption")
        images.append(
            (
                str(img.get("src", "")),
                normalise_space(str(img.get("alt", ""))),
                normalise_space(caption[0].text_content()) if caption else "",
            )
        )
    headline, publisher = _json_ld_headline(tree)
    site_names = [
        _meta(tree, "og:site_name"),
        _meta(tree, "application-name"),
        _meta(tree, "twitter:site").lstrip("@"),
        publisher,
    ]
    return PageFacts(
        meta_title=_meta(tree, "og:title", "twitter:title") or headline,
        headings=headings,
        document_title=normalise_space(document_title[0].text_content()) if document_title else "",
        site_names=[name for name in site_names if name],
        image=_meta(tree, "og:image", "og:image:url", "twitter:image", "twitter:image:src"),
        image_alt=_meta(tree, "og:image:alt", "twitter:image:alt"),
        canonical=str(next(iter(tree.xpath("//link[@rel='canonical']/@href")), "")),
        authors=[name for name in (_meta(tree, "author", "article:author"),) if name],
        standfirsts=standfirsts,
        images=images,
    )


_ARTICLE_TYPES = {"article", "newsarticle", "blogposting", "reportagenewsarticle", "webpage"}


def _json_ld_headline(tree: HtmlElement) -> tuple[str, str]:
    """(headline, publisher name) from the page's JSON-LD Article, or ("", "")."""
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text_content() or "null")
        except ValueError:
            continue
        for item in _json_ld_items(data):
            kinds = item.get("@type", "")
            kinds = [kinds] if isinstance(kinds, str) else kinds
            if not any(str(kind).lower() in _ARTICLE_TYPES for kind in kinds):
                continue
            headline = item.get("headline") or item.get("name") or ""
            publisher = item.get("publisher") or {}
            name = publisher.get("name", "") if isinstance(publisher, dict) else ""
            if isinstance(headline, str) and headline.strip():
                return normalise_space(headline), str(name)
    return "", ""


def _json_ld_items(data: Any) -> list[dict[str, Any]]:
    """Every object in a JSON-LD document: top level, lists and @graph members."""
    if isinstance(data, list):
        return [item for element in data for item in _json_ld_items(element)]
    if isinstance(data, dict):
        return [data, *_json_ld_items(data.get("@graph", []))]
    return []


def _image_alt(facts: PageFacts, image: str, base: str) -> str:
    """Alt text for the lead image: its <img> alt, its figure caption, else og:image:alt.

    Captions that are only a photo credit are no description of the picture.
    """
    # a file path on a page read from disk is compared as written
    wanted = absolute_url(image, base) or image
    for src, alt, caption in facts.images:
        if (absolute_url(src, base) or src.strip()) != wanted:
            continue
        for text in (alt, _caption_without_credit(caption)):
            if text and not is_credit(text):
                return text
    return facts.image_alt


def _caption_without_credit(caption: str) -> str:
    """A figure caption with a trailing credit sentence ("Photo: X/Reuters") removed."""
    sentences = re.split(r"(?<=[.!?])\s+", caption)
    kept = [sentence for sentence in sentences if not is_credit(sentence)]
    return " ".join(kept)
