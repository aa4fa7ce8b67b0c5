"""Email addresses: one normal form for storage and one hash for suppression.

``normalize_address`` validates syntax with email-validator (no DNS lookups)
and returns the whole address in lower case, whitespace stripped. The local
part is lowercased too, although RFC 5321 lets a server tell ``Ada@`` from
``ada@``: no real mailbox provider does, while real lists are full of the
same person typed twice in different case. One row per person wins.

``address_hash`` is the plain SHA-256 (hex) of the normalised address. A keyed
hash would hide membership from someone holding a guessed address, but every
entry would silently stop matching once the key rotated or was lost, and a
suppression list that stops suppressing is the worse failure. The plain hash
is also what other senders exchange suppression lists in.
"""

from __future__ import annotations

import functools
import hashlib
import re

from email_validator import EmailNotValidError, validate_email

try:  # the library's own local-part rules; not its documented API, so only a speed-up
    from email_validator.syntax import validate_email_local_part
except ImportError:  # pragma: no cover - a future layout: every address takes the full path
    validate_email_local_part = None  # type: ignore[assignment]

from newsletter.errors import AddressError


def normalize_address(raw: str) -> str:
    """``raw`` as typed -> the stored form (validated, lower case), or raise AddressError."""
    text = raw.strip()
    if not text:
        raise AddressError("empty email address")
    fast = _plain_address(text)
    if fast is not None:
        return fast
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"{text!r} is not a valid email address: {exc}") from None
    return result.normalized.lower()


# A short ASCII dot-atom local part: split_email has nothing to unquote or strip here.
_PLAIN = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,63}$")


@functools.lru_cache(maxsize=8192)
def _domain(domain_part: str) -> str | None:
    """email-validator's normalised form of a domain, or None if it refuses it."""
    try:
        return validate_email("x@" + domain_part, check_deliverability=False).domain
    except EmailNotValidError:
        return None


def _plain_address(text: str) -> str | None:
    """The normal form of a plain address via the cheap path, or None to take the full one.

    Validating the domain is most of email-validator's work and real lists repeat
    few domains, so the domain is validated once (cached) and
    the local part with the library's own local-part rules. Anything unusual
    (quotes, Unicode, very long) goes through the full ``validate_email``;
    tests check both paths agree.
    """
    if validate_email_local_part is None or not _PLAIN.match(text):
        return None
    local, _, domain_part = text.partition("@")
    domain = _domain(domain_part)
    if domain is None:
        return None
    try:
        validate_email_local_part(local)
    except EmailNotValidError:
        return None
    return f"{local}@{domain}".lower()


def address_hash(normalized: str) -> str:
    """The suppression key of an already normalised address: sha256 hex digest."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()
