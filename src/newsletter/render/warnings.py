"""The render's warnings: unknown mj-* tags, teasers without a link, HTML Gmail clips."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from newsletter.models import Teaser
from newsletter.render.theme import display_path
from newsletter.workspace import Workspace

if TYPE_CHECKING:
    import jinja2

GMAIL_CLIP_KB = 102

# MJML's documented components: mjml-python does not validate tags and copies any other
# mj-* tag into the HTML uncompiled, without the layout and styles the component gives
MJML_TAGS = frozenset(
    {
        "mjml",
        "mj-head",
        "mj-body",
        "mj-include",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-html-attributes",
        "mj-html-attribute",
        "mj-selector",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-title",
        "mj-accordion-text",
        "mj-button",
        "mj-carousel",
        "mj-carousel-image",
        "mj-column",
        "mj-divider",
        "mj-group",
        "mj-hero",
        "mj-image",
        "mj-navbar",
        "mj-navbar-link",
        "mj-raw",
        "mj-section",
        "mj-social",
        "mj-social-element",
        "mj-spacer",
        "mj-table",
        "mj-text",
        "mj-wrapper",
    }
)
# an opening (or self-closing) tag: one warning per use, not two
_MJML_TAG_RE = re.compile(r"<(mj(?:ml|-[A-Za-z0-9_-]*))(?=[\s/>])", re.IGNORECASE)


def size_warnings(html: str, max_kb: int) -> list[str]:
    """A warning when ``html`` is over ``max_kb`` KB (Gmail clips what comes after ~102 KB)."""
    size_kb = len(html.encode("utf-8")) / 1024
    if size_kb <= max_kb:
        return []
    return [
        f"issue.html is {size_kb:.0f} KB, over compose.max_html_kb = {max_kb}: "
        f"Gmail clips at about {GMAIL_CLIP_KB} KB and hides the footer with the "
        "unsubscribe link; drop a teaser or shorten summaries"
    ]


def _template_sources(env: jinja2.Environment, name: str) -> list[tuple[str, str | None, str]]:
    """(name, file name, source) of template ``name`` and of every template it includes,
    imports or extends by a constant name, each once."""
    import jinja2
    import jinja2.meta

    found: list[tuple[str, str | None, str]] = []
    pending, seen = [name], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            source, filename, _ = env.loader.get_source(env, current)  # type: ignore[union-attr]
            referenced = jinja2.meta.find_referenced_templates(env.parse(source))
        except jinja2.TemplateError:  # the render itself reports a missing or broken one
            continue
        found.append((current, filename, source))
        pending.extend(ref for ref in referenced if ref is not None)
    return found


def mjml_tag_warnings(ws: Workspace, env: jinja2.Environment, name: str) -> list[str]:
    """A warning, naming the file and line, for each tag in template ``name`` (and what it
    includes) that looks like MJML but is no MJML component, e.g. a misspelt ``<mj-txt>``."""
    warnings = []
    for template, filename, source in _template_sources(env, name):
        where = display_path(ws, filename, template)
        for match in _MJML_TAG_RE.finditer(source):
            tag = match.group(1)
            if tag.lower() not in MJML_TAGS:
                line = source.count("\n", 0, match.start()) + 1
                warnings.append(
                    f"{where}, line {line}: <{tag}> is not an MJML component; mjml-python "
                    "copies it into the email uncompiled (check the spelling)"
                )
    return warnings


def teaser_warnings(teasers: list[Teaser]) -> list[str]:
    """Warnings about teasers a reader cannot follow or a screen reader cannot describe."""
    warnings = []
    for number, teaser in enumerate(teasers, start=1):
        if not teaser.url:
            warnings.append(f"teaser {number} ({teaser.title!r}) has no url: no Read more link")
    return warnings
