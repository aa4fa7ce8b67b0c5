"""What is sent: the issue rendered once, checked against the sender rules, as a template.

- ``render_for_send`` reads issue.json and renders it once (never per recipient), or
  takes issue.html and issue.txt as they are when the render stamp written by compose or
  render proves them fresh (``issue.load_rendered``), then refuses an HTML part over
  100 KB (Gmail clips the footer with the unsubscribe link and address) and warns from
  ``compose.max_html_kb`` (90 by default).
- ``check_sender`` refuses a commercial send (``sender.commercial``) without a postal
  address; the sender identity (publication and sender name, From address) cannot be
  missing, the config schema requires it. For a commercial send the postal address
  must also appear in both parts of the body, and the unsubscribe slot must be in both
  (``message.build_template`` checks that one).
- ``check_placeholders`` refuses a send to a real mail server (and a test send to one)
  while a [publication] or [sender] setting still holds a placeholder ``newsletter init``
  wrote (a value starting with "CHANGE ME", or its example base_url); to the embedded
  local server or for a dry run it only warns.
"""

from __future__ import annotations

import html as html_lib
import logging
from pathlib import Path

from newsletter.compose.folder import load_rendered
from newsletter.errors import ConfigError, RenderError
from newsletter.mail.dkim import load_dkim_signer
from newsletter.mail.settings import MessageSettings
from newsletter.mail.template import MessageTemplate, build_template
from newsletter.render.pipeline import Rendered
from newsletter.smtp.settings import SmtpSettings
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

HTML_LIMIT_KB = 100
# What the init skeleton writes where the user must put their own values.
PLACEHOLDER_MARK = "CHANGE ME"
SKELETON_BASE_URL = "https://newsletter.example.org"


def issue_label(issue_dir: Path) -> str:
    """A short name for the send (Message-ID, Feedback-ID): the issue folder's name."""
    return (issue_dir.resolve().name or "issue")[:100]


def check_sender(ws: Workspace) -> None:
    """ConfigError when a commercial send lacks a postal address (CAN-SPAM)."""
    config = ws.config
    if config.sender.commercial and not config.publication.postal_address.strip():
        raise ConfigError(
            "newsletter.toml: a commercial send (sender.commercial = true) needs "
            "publication.postal_address",
            hint="add the publisher's postal address, or set sender.commercial = false "
            "for a non-commercial newsletter",
        )


def placeholder_settings(ws: Workspace) -> list[str]:
    """The workspace -> the names (``publication.postal_address``...) of the settings that
    still hold a placeholder the init skeleton wrote."""
    found = []
    for section in ("publication", "sender"):
        for key, value in getattr(ws.config, section).model_dump().items():
            if isinstance(value, str) and value.strip().upper().startswith(PLACEHOLDER_MARK):
                found.append(f"{section}.{key}")
    if ws.config.publication.base_url.rstrip("/") == SKELETON_BASE_URL:
        found.append("publication.base_url")
    return found


def check_placeholders(ws: Workspace, smtp: SmtpSettings | None) -> list[str]:
    """Placeholders left from init -> ConfigError for a real server (``smtp`` given), else
    the warnings to show (embedded server, dry run); [] when there are none."""
    found = placeholder_settings(ws)
    if not found:
        return []
    names = ", ".join(found)
    if smtp is not None:
        raise ConfigError(
            f"newsletter.toml: {names} still "
            f"{'holds' if len(found) == 1 else 'hold'} the placeholder newsletter init wrote; "
            "every reader would see it",
            hint="put your own values on the lines marked CHANGE, then send again",
        )
    held = "holds a placeholder" if len(found) == 1 else "hold placeholders"
    return [f"newsletter.toml: {names} still {held}; a real send is refused until changed"]


def html_size_warnings(html: str, warn_kb: int, where: str) -> list[str]:
    """Refuse (RenderError) an HTML part over 100 KB; a warning past ``warn_kb``."""
    size = len(html.encode("utf-8"))
    if size > HTML_LIMIT_KB * 1024:
        raise RenderError(
            f"{where}: the HTML part is {size / 1024:.0f} KB, over the {HTML_LIMIT_KB} KB "
            "limit: Gmail would clip the footer with the unsubscribe link and address",
            hint="drop a teaser or shorten the summaries in issue.json, then send again",
        )
    if size > min(warn_kb, HTML_LIMIT_KB) * 1024:
        return [
            f"{where}: the HTML part is {size / 1024:.0f} KB, close to Gmail's clipping "
            f"(~102 KB); keep it under {warn_kb} KB"
        ]
    return []


def _normalised(text: str) -> str:
    return " ".join(html_lib.unescape(text).split())


def check_body(ws: Workspace, rendered: Rendered, where: str) -> None:
    """RenderError when a commercial message's body lacks the postal address."""
    address = " ".join(ws.config.publication.postal_address.split())
    if not ws.config.sender.commercial or not address:
        return
    for part, content in (("HTML", rendered.html), ("text", rendered.text)):
        if address not in _normalised(content):
            raise RenderError(
                f"{where}: the {part} part does not show the postal address "
                f"{address!r}; a commercial message must carry it",
                hint="keep the address in the template footer (publication.postal_address)",
            )


def render_for_send(
    ws: Workspace, issue_dir: Path, smtp: SmtpSettings | None = None
) -> tuple[Rendered, list[str]]:
    """Read and render ``issue_dir`` once (or reuse its fresh render) for a send to
    ``smtp`` (None: the embedded server or a dry run) -> (rendered parts, warnings);
    checks as above."""
    check_sender(ws)
    placeholders = check_placeholders(ws, smtp)
    rendered = load_rendered(ws, issue_dir)
    where = str(issue_dir)
    warnings = placeholders + [w for w in rendered.warnings if "over compose.max_html_kb" not in w]
    warnings += html_size_warnings(rendered.html, ws.config.compose.max_html_kb, where)
    check_body(ws, rendered, where)
    for warning in warnings:  # callers show them to the user; the log keeps them too
        log.info("%s", warning)
    return rendered, warnings


def make_template(
    ws: Workspace,
    *,
    subject: str,
    html: str,
    text: str,
    label: str,
    list_id: int,
    list_name: str,
    campaign_id: int | None,
    test: bool = False,
) -> MessageTemplate:
    """The per-send MessageTemplate (headers, MIME, DKIM signer) for these parts."""
    return build_template(
        MessageSettings.from_workspace(ws),
        subject=subject,
        html_body=html,
        text_body=text,
        campaign=label,
        list_id=list_id,
        list_name=list_name,
        campaign_id=campaign_id,
        dkim_signer=load_dkim_signer(ws),
        test=test,
    )
