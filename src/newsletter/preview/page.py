"""What the preview page receives: the snapshot as JSON and the email as a frame document.

``snapshot_json(snapshot)`` -> a JSON-ready dict the page's script renders (inbox line,
plain text, checks, error). ``frame_document(rendition, dark=...)`` -> the HTML part as
the sample recipient gets it, with links opening in a new tab and, for ``dark``, the
dark-mode simulation described at ``DARK_MODE_STYLE``.
"""

from __future__ import annotations

import re
from typing import Any

from newsletter.media import MEDIA_DIR, MEDIA_NAME
from newsletter.preview.state import Rendition, Snapshot

# Dark mode, simulated the way the harshest clients do it: Gmail's apps and Outlook
# invert the whole message (colours flipped, hue kept) and leave photos alone. That is
# where emails break (dark text on a dark background, logos on transparent PNGs), so
# it is the view worth checking. Honouring the theme's own prefers-color-scheme rules,
# as Apple Mail does, would show a nicer picture and hide those failures.
# The html element keeps a dark background so the canvas outside the inverted body is
# dark too; images (and CSS background images) are inverted twice, i.e. unchanged.
DARK_MODE_STYLE = """<meta name="color-scheme" content="dark">
<style data-preview="dark-mode">
html { background: #121212 !important; }
body { filter: invert(1) hue-rotate(180deg); min-height: 100vh; }
img, picture, video, [style*="background-image"] { filter: invert(1) hue-rotate(180deg); }
</style>"""

# Links in the email must not navigate the preview frame itself.
LINK_TARGET = '<base target="_blank">'

NOTHING_YET = """<!doctype html><html><head><meta charset="utf-8"></head>
<body style="font: 15px/1.5 system-ui, sans-serif; color: #555; padding: 24px">
<p>Nothing rendered yet: fix the error shown above and save; the preview updates by itself.</p>
</body></html>"""

_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)


def frame_document(
    rendition: Rendition | None, *, dark: bool, web: bool = False, base_url: str = ""
) -> str:
    """The HTML part of ``rendition`` ready for an iframe (a placeholder if None); with
    ``web``, its web version instead. With ``base_url``, the issue's hosted images
    (``{base_url}/media/<name>``) point at the preview's own ``/media/<name>``."""
    if rendition is None:
        return NOTHING_YET
    extra = LINK_TARGET + (DARK_MODE_STYLE if dark else "")
    html = rendition.web_html if web else rendition.html
    if base_url:
        html = local_media(html, base_url)
    head_end = _HEAD_END.search(html)
    if head_end is None:
        return extra + html
    return html[: head_end.start()] + extra + html[head_end.start() :]


def local_media(html: str, base_url: str) -> str:
    """``html`` with every ``{base_url}/media/<name>`` made ``/media/<name>``.

    The published site may not exist yet while previewing, so the frame takes the
    pictures from the issue folder the preview serves.
    """
    prefix = re.escape(f"{base_url.rstrip('/')}/{MEDIA_DIR}/")
    pattern = re.compile(prefix + f"({MEDIA_NAME.pattern})")
    return pattern.sub(lambda found: f"/{MEDIA_DIR}/{found.group(1)}", html)


def _rendition_json(good: Rendition) -> dict[str, Any]:
    figures = good.figures
    recipient = good.recipient
    return {
        "version": good.version,
        "subject": good.subject,
        "preheader": good.preheader,
        "sender": {"name": good.sender_name, "address": good.sender_address},
        "to": {
            "name": recipient.name,
            "email": recipient.email,
            "example": not recipient.from_store,
        },
        "text": good.text,
        "warnings": list(good.warnings),
        "render_ms": round(good.render_ms, 1),
        "rendered_at": good.rendered_at,
        "size": {
            "bytes": figures.size_bytes,
            "warn_bytes": figures.warn_bytes,
            "clip_bytes": figures.clip_bytes,
            "status": figures.size_status,
        },
        "images": {
            "count": len(figures.images),
            "without_alt": [image.src for image in figures.images_without_alt],
        },
        "links": [
            {"url": link.url, "text": link.text, "checkable": link.checkable}
            for link in figures.links
        ],
        "recipients": {
            "list": good.recipients.list_name,
            "count": good.recipients.count,
            "hint": good.recipients.hint,
        },
    }


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """``snapshot`` as the JSON the page script reads: {version, error, good: {...} | null}."""
    return {
        "version": snapshot.version,
        "error": snapshot.error,
        "good": _rendition_json(snapshot.good) if snapshot.good else None,
    }
