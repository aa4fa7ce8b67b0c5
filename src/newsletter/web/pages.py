"""The pages ``serve`` shows, rendered from ``templates/pages/*.html.j2``.

They go through ``render.template_environment``, so a workspace restyles a page by
dropping a file of the same name into its own ``templates/pages/``. Every page
extends ``pages/base.html.j2`` (the publication's name, accent colour and postal
address, readable on a phone) and sees ``publication`` and ``base_url``.

The consent statement a person agrees to when confirming a subscription is its own
template, ``pages/consent.txt.j2``: its rendered text and a short hash of it (the
version) are stored with the confirmation, so what was shown can be proven later.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from newsletter.errors import RenderError
from newsletter.render.theme import render_template, template_environment
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

CONFIRM_UNSUBSCRIBE = "confirm_unsubscribe"
UNSUBSCRIBED = "unsubscribed"
SUBSCRIBE_FORM = "subscribe"
CHECK_INBOX = "subscribe_check_inbox"
CONFIRM_SUBSCRIPTION = "confirm_subscription"
SUBSCRIBED = "subscribed"
INVALID_LINK = "invalid_link"
TEST_COPY_LINK = "test_copy_link"
LINK_EXPIRED = "link_expired"
ERROR = "error"
PAGE_NAMES = (
    CONFIRM_UNSUBSCRIBE,
    UNSUBSCRIBED,
    SUBSCRIBE_FORM,
    CHECK_INBOX,
    CONFIRM_SUBSCRIPTION,
    SUBSCRIBED,
    INVALID_LINK,
    TEST_COPY_LINK,
    LINK_EXPIRED,
    ERROR,
)
CONSENT_TEMPLATE = "pages/consent.txt.j2"

# Shown when even the error page cannot be rendered (a broken override): no template.
FALLBACK_ERROR = (
    "<!doctype html><html><head><meta charset='utf-8'>"
    "<meta name='viewport' content='width=device-width, initial-scale=1'>"
    "<title>Something went wrong</title></head><body style='font-family:sans-serif;"
    "max-width:32rem;margin:3rem auto;padding:0 1rem'><h1>Something went wrong</h1>"
    "<p>Please try again in a few minutes.</p></body></html>"
)


@dataclass(frozen=True)
class ConsentText:
    """The consent statement as shown, and its version (first 12 hex of its SHA-256)."""

    text: str
    version: str


def mask_address(email: str) -> str:
    """``"jane.doe@example.org"`` -> ``"j•••@example.org"``: recognisable, not readable."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"


class Pages:
    """Renders the serve pages of one workspace (templates are compiled once and kept:
    an edited template shows after a restart of serve)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.env = template_environment(ws)
        self.env.filters["mask"] = mask_address
        # pages are checked once at start-up (``check``): serve keeps what it checked
        # instead of looking at every template file's time on every request
        self.env.auto_reload = False
        self._base: dict[str, Any] = {
            "publication": ws.config.publication,
            "base_url": ws.base_url,
        }

    def render(self, name: str, **context: Any) -> str:
        """Page ``name`` (e.g. ``"unsubscribed"``) with ``context`` -> HTML.

        Raises RenderError naming the template file and line when a template is broken.
        """
        return render_template(
            self.ws, self.env, f"pages/{name}.html.j2", {**self._base, **context}
        )

    def consent(self, list_name: str) -> ConsentText:
        """The consent statement for joining ``list_name``, and its version."""
        text = render_template(
            self.ws, self.env, CONSENT_TEMPLATE, {**self._base, "list_name": list_name}
        )
        text = " ".join(text.split())
        return ConsentText(text, hashlib.sha256(text.encode("utf-8")).hexdigest()[:12])

    def error_page(self, message: str) -> str:
        """The error page with ``message``; a fixed plain page if that fails too."""
        try:
            return self.render(ERROR, message=message)
        except RenderError as exc:
            log.error("cannot render the error page: %s", exc)
            return FALLBACK_ERROR

    def check(self) -> None:
        """Render every page once with sample values, so a broken override fails at start-up.

        Raises RenderError naming the file and line.
        """
        consent = self.consent("main")
        samples: dict[str, dict[str, Any]] = {
            CONFIRM_UNSUBSCRIBE: {
                "email": "reader@example.org",
                "list_name": "main",
                "already_left": False,
            },
            UNSUBSCRIBED: {"email": "reader@example.org", "list_name": "main"},
            SUBSCRIBE_FORM: {"list_name": "main", "lists": ["main"], "challenge": None},
            CHECK_INBOX: {"email": "reader@example.org", "list_name": "main"},
            CONFIRM_SUBSCRIPTION: {
                "email": "reader@example.org",
                "list_name": "main",
                "consent_text": consent.text,
                "consent_version": consent.version,
            },
            SUBSCRIBED: {"email": "reader@example.org", "list_name": "main"},
            INVALID_LINK: {},
            TEST_COPY_LINK: {},
            LINK_EXPIRED: {},
            ERROR: {"message": "sample"},
        }
        for name in PAGE_NAMES:
            self.render(name, **samples[name])
