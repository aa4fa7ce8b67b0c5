"""Read a Markdown article with optional YAML front matter.

Front matter (between ``---`` lines, read with ``yaml.safe_load``) may give: title,
url (or link), image, image_alt, byline (or author/authors), date (or published),
summary (or teaser/description), standfirst (or subtitle/dek: the teaser when it fits
the word budget; a summary always wins). The body's first ``# heading`` is the title
when the front matter has none. The body is rendered by markdown-it-py (CommonMark) and turned
into plain paragraphs, so no Markdown syntax reaches the text.

A Markdown file is written by an editor, not scraped: its text is kept as written
(lists and subheads included), only the title repeat is dropped.

In: the decoded file, its source name, and the URL it was fetched from (if any).
Out: one ``Article``; ``SourceError`` naming the file and line for broken front matter.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml
from markdown_it import MarkdownIt

from newsletter.compose.ingest.boilerplate import normalise_space, same_text
from newsletter.compose.ingest.fields import (
    absolute_url,
    is_local_reference,
    iso_date,
    join_names,
)
from newsletter.compose.ingest.htmltext import html_to_paragraphs, parse_fragment
from newsletter.compose.ingest.titles import title_from_text
from newsletter.errors import SourceError
from newsletter.models import Article

_FENCE = re.compile(r"^---[ \t]*$")
_CLOSING_FENCE = re.compile(r"^(?:---|\.\.\.)[ \t]*$")
_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title", "headline"),
    "url": ("url", "link", "canonical_url"),
    "image": ("image", "cover", "cover_image", "image_url"),
    "image_alt": ("image_alt", "alt", "image_caption", "caption"),
    "byline": ("byline", "author", "authors"),
    "published": ("date", "published", "pubdate"),
    "summary": ("summary", "teaser", "description", "excerpt"),
    "standfirst": ("standfirst", "subtitle", "dek"),
}
_markdown = MarkdownIt("commonmark")


def read_markdown(content: str, source: str, *, url: str = "") -> Article:
    """Build an Article from Markdown with optional front matter (see module docstring)."""
    meta, body, meta_lines = split_front_matter(content, source)
    fields = _front_matter_fields(meta, meta_lines, source, local=not url)
    root = parse_fragment(_markdown.render(body))
    title = fields.get("title", "")
    first_heading = next(iter(root.xpath("//h1")), None)
    if first_heading is not None and not title:
        title = normalise_space(first_heading.text_content())
    if first_heading is not None and same_text(first_heading.text_content(), title):
        first_heading.drop_tree()
    image, image_alt = fields.get("image", ""), fields.get("image_alt", "")
    if not image:
        image, image_alt = _first_image(root, url, local=not url)
    paragraphs = [line for line in html_to_paragraphs(root) if not same_text(line, title)]
    if not paragraphs:
        raise SourceError(
            f"no article text found in {source}",
            hint="write the article's paragraphs below its title",
        )
    title = title or title_from_text(paragraphs[0])
    return Article(
        title=title,
        text="\n\n".join(paragraphs),
        source=source,
        url=fields.get("url", absolute_url(url)),
        image=image,
        image_alt=(image_alt or title) if image else "",
        byline=fields.get("byline", ""),
        published=fields.get("published", ""),
        summary=fields.get("summary", ""),
        standfirst=fields.get("standfirst", ""),
        priority=_priority(meta.get("priority"), meta_lines, source),
    )


def split_front_matter(content: str, source: str) -> tuple[dict[str, Any], str, dict[str, int]]:
    """Split ``content`` into (front matter mapping, Markdown body, line number of each key).

    No front matter gives ({}, content, {}). Broken YAML, an unclosed block or a
    front matter that is not a mapping is a ``SourceError`` naming the file line.
    """
    lines = content.splitlines(keepends=True)
    if not lines or not _FENCE.match(lines[0].rstrip("\r\n")):
        return {}, content, {}
    end = next(
        (i for i in range(1, len(lines)) if _CLOSING_FENCE.match(lines[i].rstrip("\r\n"))), None
    )
    if end is None:
        raise SourceError(
            f"{source}, line 1: front matter is never closed",
            hint="end it with a line holding only '---'",
        )
    block = "".join(lines[1:end])
    try:
        data = yaml.safe_load(block)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 2 if mark is not None else 2  # +1 for 1-based, +1 for '---'
        problem = exc.problem or exc.context or "invalid YAML"
        raise SourceError(
            f"{source}, line {line}: front matter is not valid YAML ({problem})",
            hint="fix the YAML between the '---' lines; quote values that contain ': '",
        ) from None
    except yaml.YAMLError as exc:
        raise SourceError(
            f"{source}: front matter is not valid YAML ({exc})",
            hint="fix the YAML between the '---' lines",
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SourceError(
            f"{source}, line 2: front matter must be 'key: value' lines",
            hint="write it as e.g. 'title: My headline'",
        )
    key_lines: dict[str, int] = {}
    for number, text in enumerate(lines[1:end], start=2):
        if match := re.match(r"^([A-Za-z_][\w-]*)\s*:", text):
            key_lines.setdefault(match.group(1).lower(), number)
    meta = {str(key).lower(): value for key, value in data.items()}
    return meta, "".join(lines[end + 1 :]), key_lines


def _front_matter_fields(
    meta: dict[str, Any], key_lines: dict[str, int], source: str, *, local: bool
) -> dict[str, str]:
    """The Article fields the front matter gives, checked and normalised; with ``local``
    (a file on disk) ``image`` may be a path to an image file, kept as written."""
    fields: dict[str, str] = {}
    for field_name, keys in _ALIASES.items():
        key = next((k for k in keys if meta.get(k) not in (None, "", [])), None)
        if key is None:
            continue
        value = meta[key]
        where = f"{source}, line {key_lines.get(key, 2)}"
        fields[field_name] = _field_value(field_name, key, value, where, local=local)
    return fields


def _field_value(field_name: str, key: str, value: Any, where: str, *, local: bool) -> str:
    if field_name == "byline":
        return join_names(value)
    if field_name == "published":
        date = iso_date(value)
        if not date:
            raise SourceError(
                f"{where}: front matter '{key}' is not a date ({value!r})",
                hint="write it as YYYY-MM-DD, e.g. 2026-11-28",
            )
        return date
    if isinstance(value, (dict, list, dt.date, dt.datetime)):
        raise SourceError(f"{where}: front matter '{key}' must be text", hint="write one value")
    text = normalise_space(str(value))
    if field_name not in {"url", "image"}:
        return text
    if field_name == "image" and local and is_local_reference(text):
        return text  # a file beside the article or in the workspace: compose hosts it
    if not (url := absolute_url(text)):
        raise SourceError(
            f"{where}: front matter '{key}' must be an absolute http(s) URL ({text!r})",
            hint="write the full address, e.g. https://example.org/picture.jpg",
        )
    return url


def _priority(value: Any, key_lines: dict[str, int], source: str) -> float:
    """Front matter ``priority`` (higher is featured first) -> a number; 0 when absent."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SourceError(
            f"{source}, line {key_lines.get('priority', 2)}: front matter 'priority' must be "
            f"a number ({value!r})",
            hint="write e.g. 'priority: 10' (higher comes first)",
        )
    return float(value)


def _first_image(root: Any, base: str, *, local: bool) -> tuple[str, str]:
    """The first body image with an absolute (or resolvable) URL, or with ``local`` a file
    path, and its alt text."""
    for img in root.xpath("//img[@src]"):
        raw = img.get("src", "")
        src = raw.strip() if local and is_local_reference(raw) else absolute_url(raw, base)
        if src:
            return src, normalise_space(img.get("alt", ""))
    return "", ""
