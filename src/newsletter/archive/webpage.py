"""A published issue's web version: what was sent, with nothing personal in it.

The issue folder's issue.html is the web version rendered beside the parts that were
sent; it is used when the folder's .send.html is still byte for byte the campaign's
stored HTML. Otherwise (the folder was edited, re-rendered or removed since) the
campaign's stored HTML is used with every slot filled with the reader's stand-ins, so
even then no address, name, attribute or unsubscribe token can appear. Either way the
head gets a proper title, Open Graph and canonical tags (``pages/web_head.html.j2``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from newsletter.archive.query import PublicIssue
from newsletter.compose.folder import ISSUE_HTML
from newsletter.mail.slots import slot_grammar
from newsletter.render.pipeline import reader_values, web_url
from newsletter.render.stamp import SEND_HTML
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

HEAD_TEMPLATE = "pages/web_head.html.j2"
_HEAD_OPEN = re.compile(r"<head[^>]*>", re.IGNORECASE)
DESCRIPTION_MAX = 300


@dataclass(frozen=True)
class WebVersion:
    """One issue's web page (``html``, head tags included), its ``url``, and the
    ``description`` and ``image`` its Open Graph tags carry (also the feed's summary)."""

    url: str
    html: str
    description: str
    image: str


def reader_html(ws: Workspace, issue: PublicIssue) -> str:
    """The web version's HTML of ``issue`` (see the module docstring), without head tags."""
    folder = issue.folder(ws)
    try:
        if (folder / SEND_HTML).read_text(encoding="utf-8") == issue.html:
            return (folder / ISSUE_HTML).read_text(encoding="utf-8")
        log.info("%s: changed since it was sent; publishing the stored copy", folder)
    except (OSError, UnicodeDecodeError) as exc:
        log.info("%s: no web version in the folder (%s); publishing the stored copy", folder, exc)
    return slot_grammar(ws).fill(issue.html, reader_values(ws), html=True)


def _text(node: Any) -> str:
    return " ".join(node.text_content().split())


def describe(ws: Workspace, html: str) -> tuple[str, str]:
    """(description, image) of a web version: its preheader (else the first paragraph
    after the greeting), and its first image that is not the logo ("" when none)."""
    import lxml.html

    tree = lxml.html.document_fromstring(html)
    description = ""
    for node in tree.xpath('//div[contains(concat(" ", @class, " "), " preheader ")]'):
        description = _text(node)
        break
    if not description:
        texts = [_text(node) for node in tree.xpath("//body//div[not(*)]") if _text(node)]
        description = next((t for t in texts if len(t.split()) >= 8), "")
    if len(description) > DESCRIPTION_MAX:
        description = description[: DESCRIPTION_MAX - 1].rsplit(" ", 1)[0] + "…"
    logo = ws.config.publication.logo_url
    image = next(
        (str(src) for src in tree.xpath("//body//img/@src") if src and str(src) != logo), ""
    )
    return description, image


def public_subject(ws: Workspace, subject: str) -> str:
    """The subject as the editor wrote it (``%%name%%`` slots) with the reader's stand-ins."""
    grammar = slot_grammar(ws)
    return grammar.fill(grammar.mark(subject), reader_values(ws), html=False)


def web_version(ws: Workspace, issue: PublicIssue, env: Any) -> WebVersion:
    """``issue``'s web page: its reader's HTML with the head tags rendered by ``env``
    (the workspace's template environment) inserted at the top of its head."""
    from newsletter.render.theme import render_template

    html = reader_html(ws, issue)
    description, image = describe(ws, html)
    url = web_url(ws, issue.slug)
    head = render_template(
        ws,
        env,
        HEAD_TEMPLATE,
        {
            "publication": ws.config.publication,
            "base_url": ws.base_url,
            "subject": public_subject(ws, issue.subject),
            "description": description,
            "image": image,
            "url": url,
            "sent_at": issue.sent_at,
        },
    )
    opening = _HEAD_OPEN.search(html)
    at = opening.end() if opening else 0
    page = f"{html[:at]}\n{head.strip()}\n{html[at:]}"
    return WebVersion(url=url, html=page, description=description, image=image)
