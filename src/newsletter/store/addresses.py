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

import hashlib

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import StoreError


class AddressError(StoreError):
    """A string is not a usable email address."""


def normalize_address(raw: str) -> str:
    """``raw`` as typed -> the stored form (validated, lower case), or raise AddressError."""
    text = raw.strip()
    if not text:
        raise AddressError("empty email address")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"{text!r} is not a valid email address: {exc}") from None
    return result.normalized.lower()


def address_hash(normalized: str) -> str:
    """The suppression key of an already normalised address: sha256 hex digest."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()
