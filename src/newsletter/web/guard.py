"""Which pages may post the sign-up form.

A browser names the page a form was posted from in ``Origin`` (or, failing that, in
``Referer``). A post naming a page outside ``serve.form_origins`` is someone else's
site making its visitors' browsers sign addresses up: the app answers it like any
sign-up and does nothing. A post with neither header (curl, a privacy add-on that strips
both) is let through: refusing it would stop people, not forgers, who can send no
headers too. ``Origin: null`` (a sandboxed frame, a ``no-referrer`` page) names no page
and is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from newsletter.workspace import Workspace

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``"https://Example.org:443/x?y"`` -> ``"https://example.org"``; None if not http(s)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    return (
        f"{scheme}://{host}"
        if port in (None, DEFAULT_PORTS[scheme])
        else f"{scheme}://{host}:{port}"
    )


def allowed_origins(ws: Workspace) -> frozenset[str]:
    """``serve.form_origins``, or by default the base URL's and publication.website's."""
    configured = ws.config.serve.form_origins or [
        ws.base_url,
        *([ws.config.publication.website] if ws.config.publication.website else []),
    ]
    return frozenset(o for o in (origin_of(url) for url in configured) if o is not None)


class FormOrigins:
    """Decides from a request's headers whether it was posted from an allowed page."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    def sender(self, headers: Mapping[str, str]) -> str | None:
        """The origin a browser says posted the form: Origin, else Referer's; None if neither."""
        origin = headers.get("origin")
        if origin is not None:
            return origin.strip()
        referer = headers.get("referer")
        if referer is None:
            return None
        return origin_of(referer) or "null"

    def allows(self, headers: Mapping[str, str], own_url: str = "") -> bool:
        """True unless Origin/Referer name a page outside the allowed origins.

        ``own_url`` is the URL the request reached (its Host): a form on a page of this
        very server (``serve`` tried out on 127.0.0.1) posts from there.
        """
        sender = self.sender(headers)
        if sender is None:
            return True
        origin = origin_of(sender)
        return origin is not None and (origin in self.allowed or origin == origin_of(own_url))
