"""MJML -> email HTML: mjml-python compiles, premailer inlines the CSS.

Both libraries (with cssutils and lxml) are imported inside the functions: they take
about 0.4 s to import, and a send that reuses a fresh render needs neither.
"""

from __future__ import annotations

import logging
import re

from newsletter.errors import RenderError

# cssutils warns about every mso-* property MJML emits; that is noise, not news.
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)


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
