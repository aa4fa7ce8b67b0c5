"""Issue -> finished email parts (HTML + plain text) with recipient slots; the theme loader.

Rendering runs ONCE per issue: Jinja builds MJML from ``issue.mjml.j2``, mjml-python
compiles it to HTML, premailer inlines the CSS; the text part comes from
``issue.txt.j2``. What differs per recipient stays as slot tokens (see ``slots``) that
survive every stage byte for byte and are filled later, once per recipient. Only the
templates' ``slot()`` and the editor's fields (subject, preheader, intro) make slots;
article text never does. ``Rendered`` also carries the reader's view: the slots filled
with the publication's neutral stand-ins, which is what issue.html shows.

Templates are looked up in the workspace's ``templates/`` folder first, then in the
packaged default theme, so a workspace overrides a theme file by dropping in one of
the same name.
"""

from __future__ import annotations

import functools
import logging
import re
import textwrap
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from newsletter.errors import RenderError
from newsletter.mail.slots import SlotGrammar, slot_grammar
from newsletter.models import Issue, Teaser
from newsletter.workspace import Workspace

# jinja2, mjml and premailer (with cssutils, lxml and requests) are imported inside the
# functions that use them: together they take ~0.4 s to import, and what most callers
# need from here (Rendered, slots, long_date, the warnings) or a send that reuses a
# fresh render (issue.load_rendered) needs none of them.
if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

HTML_TEMPLATE = "issue.mjml.j2"
TEXT_TEMPLATE = "issue.txt.j2"
TEXT_WIDTH = 76
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

# the reader's view of the greeting when there is no name
GREETING_FALLBACK = "reader"
# the reader's view of "This email was sent to ...": no address in a file people share
READER_EMAIL = "you"

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# cssutils warns about every mso-* property MJML emits; that is noise, not news.
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)


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


# --- slots -------------------------------------------------------------------------------


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


# --- the theme loader ----------------------------------------------------------------------


def _autoescape(template_name: str | None) -> bool:
    # "issue.mjml.j2" -> look at ".mjml": escape markup, never the text part
    name = (template_name or "").removesuffix(".j2")
    return name.endswith((".html", ".htm", ".mjml", ".xml"))


def long_date(value: str | date) -> str:
    """An ISO date (``"2026-11-28"`` or a date) -> ``"28 November 2026"``."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def wrap_text(value: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    """Wrap each paragraph of ``value`` to ``width`` columns; URLs and long words never break."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", value.strip())]
    wrapped = [
        textwrap.fill(
            " ".join(p.split()),
            width=width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for p in paragraphs
        if p
    ]
    return "\n\n".join(wrapped)


def url_host(url: str) -> str:
    """``"https://www.example.org/a/b"`` -> ``"example.org"``; "" when ``url`` has no host."""
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


def credit_line(teaser: Teaser) -> str:
    """The line under a headline: ``"By Jane Roe · example.org"`` (either part may be absent)."""
    parts = []
    byline = " ".join(teaser.byline.split())
    if byline:
        parts.append(byline if byline.lower().startswith("by ") else f"By {byline}")
    if url_host(teaser.url):
        parts.append(url_host(teaser.url))
    return " · ".join(parts)


@functools.cache
def _bytecode_cache() -> jinja2.BytecodeCache:
    """The process's one in-memory cache of compiled templates (made on first use, since
    its base class is jinja2's).

    Jinja checks each entry against the checksum of the source it just loaded, so an
    edited or newly added override is recompiled while an unchanged theme is not.
    """
    import jinja2
    import jinja2.bccache

    class MemoryBytecodeCache(jinja2.BytecodeCache):
        def __init__(self) -> None:
            self._store: dict[str, bytes] = {}

        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            data = self._store.get(bucket.key)
            if data is not None:
                bucket.bytecode_from_string(data)

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            self._store[bucket.key] = bucket.bytecode_to_string()

    return MemoryBytecodeCache()


def template_environment(ws: Workspace) -> jinja2.Environment:
    """A Jinja environment over ``ws.templates_dir`` first, then the packaged theme.

    StrictUndefined (a misspelt variable fails the render), autoescape for ``*.html.j2``
    and ``*.mjml.j2``, none for ``*.txt.j2``. Globals: ``slot`` (the workspace's slot
    tokens, see ``slots``); filters: ``long_date``,
    ``wrap_text``, ``host``, ``credit_line``. Preview and serve render their pages with this too.
    """
    import jinja2

    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(ws.templates_dir),
            jinja2.PackageLoader("newsletter", "templates"),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(),
    )
    env.globals["slot"] = slot_grammar(ws).token
    env.filters["long_date"] = long_date
    env.filters["wrap_text"] = wrap_text
    env.filters["host"] = url_host
    env.filters["credit_line"] = credit_line
    return env


def _display_path(ws: Workspace, filename: str | None, name: str) -> str:
    """How to name template ``name`` loaded from ``filename`` in an error message."""
    if filename is None:
        return name
    path = Path(filename)
    if path.is_relative_to(ws.root):
        return str(path.relative_to(ws.root))
    return f"{name} (packaged theme)"


def _describe_template(ws: Workspace, env: jinja2.Environment, name: str) -> str:
    """Where template ``name`` comes from, for error messages."""
    import jinja2

    try:
        filename = env.get_template(name).filename
    except jinja2.TemplateError:
        filename = None
    return _display_path(ws, filename, name)


def _error_line(exc: BaseException, template_file: str | None) -> int | None:
    """The template line an exception was raised at (Jinja maps frames to template lines)."""
    import jinja2

    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.lineno
    if template_file is None:
        return None
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == template_file:
            line = frame.lineno
    return line


def render_template(
    ws: Workspace, env: jinja2.Environment, name: str, context: Mapping[str, Any]
) -> str:
    """Template ``name`` rendered with ``context``; a failure -> RenderError with file, line."""
    import jinja2

    template_file: str | None = None
    try:
        template = env.get_template(name)
        template_file = template.filename
        return template.render(context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(
            f"template {exc.name} not found in templates/ or the packaged theme",
            hint="restore the file or remove the include",
        ) from None
    except RenderError as exc:
        where = _describe_template(ws, env, name)
        line = _error_line(exc, template_file)
        raise RenderError(
            f"{where}, line {line}: {exc.message}" if line else f"{where}: {exc.message}",
            hint=exc.hint,
        ) from None
    except Exception as exc:  # any template bug: undefined name, bad filter, type error
        if isinstance(exc, jinja2.TemplateSyntaxError):
            where = _display_path(ws, exc.filename, exc.name or name)
        else:
            where = _describe_template(ws, env, name)
        line = _error_line(exc, template_file)
        message = getattr(exc, "message", None) or str(exc)
        location = f"{where}, line {line}" if line else where
        raise RenderError(
            f"{location}: {type(exc).__name__}: {message}",
            hint="fix the template and render again",
        ) from None


# --- stages ------------------------------------------------------------------------------


def template_context(ws: Workspace, issue: Issue) -> dict[str, Any]:
    """What the issue templates see: publication, sender, issue (editor slots as tokens),
    teasers, base_url, slot."""
    grammar = slot_grammar(ws)
    return {
        "publication": ws.config.publication,
        "sender": ws.config.sender,
        "issue": editor_fields(issue, grammar),
        "teasers": issue.teasers,
        "base_url": ws.base_url,
        "slot": grammar.token,
    }


def compile_mjml(source: str, template: str) -> str:
    """MJML text -> HTML via mjml-python; a parse failure -> RenderError naming ``template``."""
    import mjml

    try:
        # fonts={}: never link the web fonts mjml knows by name; nothing is fetched
        return mjml.mjml2html(source, fonts={})
    except ValueError as exc:
        raise RenderError(
            f"{template} produced MJML that cannot be compiled: {exc}",
            hint="check the tags the template writes (mjml-python does not validate them)",
        ) from None


_DOCTYPE_RE = re.compile(r"\s*(<!doctype[^>]*>)", re.IGNORECASE)


def inline_css(compiled: str) -> str:
    """Compiled HTML -> HTML with CSS inlined by premailer, kept safe for email.

    No network, ``!important`` kept in the ``@media`` rules, ``<img width>`` left as
    MJML wrote it, style tags kept (so the responsive rules survive), and the doctype
    restored (premailer drops a lowercase one).
    """
    from premailer import Premailer

    inlined = Premailer(
        compiled,
        allow_network=False,
        strip_important=False,
        disable_basic_attributes=["width", "height"],
        keep_style_tags=True,
        disable_link_rewrites=True,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    doctype = _DOCTYPE_RE.match(compiled)
    if doctype and not _DOCTYPE_RE.match(inlined):
        inlined = f"{doctype.group(1)}\n{inlined}"
    return inlined


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
        where = _display_path(ws, filename, template)
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


def render_issue(ws: Workspace, issue: Issue, *, times: StageTimes | None = None) -> Rendered:
    """``issue`` in the workspace theme -> Rendered(html, text, subject, preheader, warnings).

    Jinja -> MJML -> mjml-python -> premailer for the HTML, ``issue.txt.j2`` for the
    text. Slots stay unfilled. ``times``, when given, receives the seconds per stage.
    Raises RenderError naming the template file and line on any template problem.
    """
    times = times if times is not None else StageTimes()
    env = template_environment(ws)
    context = template_context(ws, issue)

    started = time.perf_counter()
    mjml_source = render_template(ws, env, HTML_TEMPLATE, context)
    times.jinja = time.perf_counter() - started

    started = time.perf_counter()
    compiled = compile_mjml(mjml_source, _describe_template(ws, env, HTML_TEMPLATE))
    times.mjml = time.perf_counter() - started

    started = time.perf_counter()
    html = inline_css(compiled)
    times.premailer = time.perf_counter() - started

    started = time.perf_counter()
    text = render_template(ws, env, TEXT_TEMPLATE, context)
    times.text = time.perf_counter() - started

    rendered = rendered_from(ws, issue, html=html, text=text)
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


def rendered_from(ws: Workspace, issue: Issue, *, html: str, text: str) -> Rendered:
    """The parts ``html`` and ``text`` rendered from ``issue`` -> Rendered, with the
    subject, preheader, reader's view and teaser and size warnings ``render_issue`` gives.

    Needs none of the render stack: ``issue.load_rendered`` uses it for parts read back
    from a fresh issue folder.
    """
    grammar, values = slot_grammar(ws), reader_values(ws)
    return Rendered(
        html=html,
        text=text,
        subject=issue.subject,
        preheader=issue.preheader,
        warnings=teaser_warnings(issue.teasers)
        + size_warnings(html, ws.config.compose.max_html_kb),
        reader_html=grammar.fill(html, values, html=True),
        reader_text=grammar.fill(text, values, html=False),
    )
