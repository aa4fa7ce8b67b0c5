"""Issue -> finished email parts (HTML + plain text) with recipient slots.

Rendering runs ONCE per issue: Jinja builds MJML from ``issue.mjml.j2``, mjml-python
compiles it to HTML, premailer inlines the CSS; the text part comes from
``issue.txt.j2``. What differs per recipient stays as slot tokens (see ``slots``) that
survive every stage byte for byte and are filled later, once per recipient. Only the
templates' ``slot()`` and the editor's fields (subject, preheader, intro) make slots;
article text never does. ``Rendered`` also carries the reader's view, which is the web
version: the same templates rendered once more with ``web_version`` set (a "Subscribe"
link where the mail has "Unsubscribe", no "View in your browser" link), without premailer
(a browser reads the style tags itself), its slots filled with the publication's neutral
stand-ins. That is what issue.html shows and what the archive publishes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from newsletter.errors import RenderError
from newsletter.mail.slots import SlotGrammar, slot_grammar
from newsletter.models import Issue
from newsletter.render.mjml import compile_mjml, inline_css
from newsletter.render.theme import describe_template, render_template, template_environment
from newsletter.render.warnings import mjml_tag_warnings, size_warnings, teaser_warnings
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

HTML_TEMPLATE = "issue.mjml.j2"
TEXT_TEMPLATE = "issue.txt.j2"

# the reader's view of the greeting when there is no name
GREETING_FALLBACK = "reader"
# the reader's view of "This email was sent to ...": no address in a file people share
READER_EMAIL = "you"


@dataclass(frozen=True)
class Rendered:
    """One rendered issue: inlined ``html`` and ``text`` parts, both with slots unfilled,
    the ``subject`` and ``preheader`` as the editor wrote them (``%%name%%`` slots), and
    ``reader_html`` / ``reader_text``: the parts as a reader sees them, slots filled with
    the publication's neutral stand-ins (no address, no name, no unsubscribe link)."""

    html: str
    text: str
    subject: str
    preheader: str
    warnings: list[str] = field(default_factory=list)
    reader_html: str = ""
    reader_text: str = ""


@dataclass
class StageTimes:
    """Seconds spent in each render stage (filled by ``render_issue`` when passed in)."""

    jinja: float = 0.0
    mjml: float = 0.0
    premailer: float = 0.0
    text: float = 0.0
    web: float = 0.0


def reader_values(ws: Workspace) -> dict[str, str]:
    """The slot values of the reader's view: greeting fallback, no address or name, and
    the hosted subscribe form where the unsubscribe link was."""
    return {
        "email": READER_EMAIL,
        "name": "",
        "first_name": "",
        "greeting_name": GREETING_FALLBACK,
        "unsubscribe_url": f"{ws.base_url}/subscribe",
    }


def editor_fields(issue: Issue, grammar: SlotGrammar) -> Issue:
    """``issue`` with the ``%%name%%`` slots of the fields the editor writes (subject,
    preheader, intro) turned into tokens; the teasers' fields stay text."""
    return replace(
        issue,
        subject=grammar.mark(issue.subject),
        preheader=grammar.mark(issue.preheader),
        intro=grammar.mark(issue.intro),
    )


def web_url(ws: Workspace, folder_name: str) -> str:
    """The web version's URL of the issue folder named ``folder_name`` (its stable id in
    the archive): ``{base_url}/archive/<folder_name>/``, or "" for no folder."""
    return f"{ws.base_url}/archive/{quote(folder_name, safe='')}/" if folder_name else ""


def template_context(
    ws: Workspace, issue: Issue, *, folder_name: str = "", web_version: bool = False
) -> dict[str, Any]:
    """What the issue templates see: publication, sender, issue (editor slots as tokens),
    teasers, base_url, slot, web_url (the issue's web version, "" when the issue has no
    folder yet) and web_version (True while rendering the web version)."""
    grammar = slot_grammar(ws)
    return {
        "web_url": web_url(ws, folder_name),
        "web_version": web_version,
        "publication": ws.config.publication,
        "sender": ws.config.sender,
        "issue": editor_fields(issue, grammar),
        "teasers": issue.teasers,
        "base_url": ws.base_url,
        "slot": grammar.token,
    }


def render_issue(
    ws: Workspace,
    issue: Issue,
    *,
    times: StageTimes | None = None,
    folder_name: str = "",
) -> Rendered:
    """``issue`` in the workspace theme -> Rendered(html, text, subject, preheader,
    warnings, reader_html, reader_text).

    Jinja -> MJML -> mjml-python -> premailer for the HTML, ``issue.txt.j2`` for the
    text. Slots stay unfilled. ``folder_name`` (the issue folder's name) makes the
    "View in your browser" link. ``times``, when given, receives the seconds per stage.
    Raises RenderError naming the template file and line on any template problem.
    """
    _check_images_hosted(issue)
    times = times if times is not None else StageTimes()
    env = template_environment(ws)
    context = template_context(ws, issue, folder_name=folder_name)

    started = time.perf_counter()
    mjml_source = render_template(ws, env, HTML_TEMPLATE, context)
    times.jinja = time.perf_counter() - started

    started = time.perf_counter()
    compiled = compile_mjml(mjml_source, describe_template(ws, env, HTML_TEMPLATE))
    times.mjml = time.perf_counter() - started

    started = time.perf_counter()
    html = inline_css(compiled)
    times.premailer = time.perf_counter() - started

    started = time.perf_counter()
    text = render_template(ws, env, TEXT_TEMPLATE, context)
    times.text = time.perf_counter() - started

    started = time.perf_counter()
    web_html, web_text = _render_web_version(ws, env, issue, folder_name)
    times.web = time.perf_counter() - started

    rendered = rendered_from(ws, issue, html=html, text=text, web_parts=(web_html, web_text))
    tag_warnings = mjml_tag_warnings(ws, env, HTML_TEMPLATE)
    if tag_warnings:
        rendered = replace(rendered, warnings=tag_warnings + rendered.warnings)
    log.debug(
        "rendered %r: %d bytes of HTML, %d warnings",
        issue.subject,
        len(html),
        len(rendered.warnings),
    )
    return rendered


def _check_images_hosted(issue: Issue) -> None:
    """RenderError when a teaser's image is still a local file's path: a mail can only
    show it once ``newsletter render FOLDER`` has hosted it."""
    for number, teaser in enumerate(issue.teasers):
        if teaser.image and not teaser.image.lower().startswith(("http://", "https://")):
            raise RenderError(
                f"issue.json: teasers[{number}].image {teaser.image!r} is a local file, "
                "not hosted yet",
                hint="run newsletter render FOLDER: it copies the image into the issue",
            )


def _render_web_version(ws: Workspace, env: Any, issue: Issue, folder_name: str) -> tuple[str, str]:
    """The web version's HTML and text (slots unfilled): the same templates with
    ``web_version`` set; no premailer, since a browser applies the style tags itself."""
    context = template_context(ws, issue, folder_name=folder_name, web_version=True)
    mjml_source = render_template(ws, env, HTML_TEMPLATE, context)
    html = compile_mjml(mjml_source, describe_template(ws, env, HTML_TEMPLATE))
    return html, render_template(ws, env, TEXT_TEMPLATE, context)


def rendered_from(
    ws: Workspace,
    issue: Issue,
    *,
    html: str,
    text: str,
    web_parts: tuple[str, str] | None = None,
) -> Rendered:
    """The parts ``html`` and ``text`` rendered from ``issue`` -> Rendered, with the
    subject, preheader, reader's view and teaser and size warnings ``render_issue`` gives.

    ``web_parts`` (HTML, text) are the web version, slots unfilled or already filled;
    without them the reader's view is ``html`` and ``text`` with the stand-ins filled.
    Needs none of the render stack: ``issue.load_rendered`` uses it for parts read back
    from a fresh issue folder.
    """
    grammar, values = slot_grammar(ws), reader_values(ws)
    reader_html, reader_text = web_parts if web_parts is not None else (html, text)
    return Rendered(
        html=html,
        text=text,
        subject=issue.subject,
        preheader=issue.preheader,
        warnings=teaser_warnings(issue.teasers)
        + size_warnings(html, ws.config.compose.max_html_kb),
        reader_html=grammar.fill(reader_html, values, html=True),
        reader_text=grammar.fill(reader_text, values, html=False),
    )
