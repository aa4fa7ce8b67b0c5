"""Who a bounce or complaint report is about: the signed references in it.

Signed references first: our VERP address among the recipients (the envelope
recipient when the caller knows it, Delivered-To, X-Original-To, To; for a complaint
also Original-Mail-From and the attached message's Return-Path), and the unsubscribe
token in the attached original's List-Unsubscribe. A reference that looks like ours
but does not verify, or two that name different subscribers, mark the report as forged:
it counts for nothing, not even through the unsigned fallback. A link that does not
even parse as a URL is not ours and is skipped.

A report without any signed reference is "unsigned": anyone who can mail the bounce
address can write one about anyone, and every message we send carries both signed
references, so by default it changes nothing. Only with ``[bounces] trust_unsigned =
true`` are the report's own addresses (Final-Recipient / Original-Recipient; a
complaint's Original-Rcpt-To and the attached message's To) looked up among existing
subscribers; an address nobody has is never suppressed on the word of an unsigned
report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from email.message import Message
from urllib.parse import urlsplit

from newsletter.audience.bounces.parse import header_values, mail_addresses
from newsletter.errors import TokenError
from newsletter.mail.tokens import UNSUBSCRIBE_PATH, UnsubscribeTokens
from newsletter.mail.verp import decode_verp

_BRACKETED = re.compile(r"<([^<>]*)>")


def recipients(message: Message, envelope_recipient: str | None) -> list[str]:
    """Where the report was delivered: the envelope recipient first, then the headers."""
    values = [envelope_recipient] if envelope_recipient else []
    for name in ("Delivered-To", "X-Original-To", "To"):
        values += header_values(message, name)
    return mail_addresses(values)


def verp_references(
    addresses: Iterable[str], keys: Sequence[str], bounce_address: str
) -> list[tuple[str, int | None]]:
    """("verp", id or None) for each address in the shape of our VERP addresses."""
    local, _, domain = bounce_address.lower().rpartition("@")
    found = []
    for address in addresses:
        their_local, _, their_domain = address.lower().rpartition("@")
        if their_domain == domain and their_local.startswith(local + "+"):
            found.append(("verp", decode_verp(address, keys)))
    return found


def _link_tokens(original: Message) -> list[str]:
    """The token of each of our https unsubscribe links in ``original``'s List-Unsubscribe."""
    found = []
    for value in header_values(original, "List-Unsubscribe"):
        for uri in (found_uri.strip() for found_uri in _BRACKETED.findall(value)):
            try:
                path = urlsplit(uri).path
            except ValueError:  # "Invalid IPv6 URL" and the like: we never write such links
                continue
            if not uri.lower().startswith(("https://", "http://")) or UNSUBSCRIBE_PATH not in path:
                continue  # a mailto: link, or not one of ours
            found.append(path.rsplit(UNSUBSCRIBE_PATH, 1)[1])
    return found


def token_references(original: Message | None, keys: Sequence[str]) -> list[tuple[str, int | None]]:
    """("token", id or None) for each of our unsubscribe links in ``original``'s headers."""
    if original is None:
        return []
    tokens = UnsubscribeTokens(keys)
    found: list[tuple[str, int | None]] = []
    for token in _link_tokens(original):
        try:
            found.append(("token", tokens.read(token).subscriber_id))
        except TokenError:
            found.append(("token", None))
    return found


def token_campaign(original: Message | None, keys: Sequence[str]) -> int | None:
    """The campaign id the verified unsubscribe tokens in ``original``'s List-Unsubscribe
    carry, or None (no original, no campaign in the token, or tokens that disagree)."""
    if original is None:
        return None
    tokens = UnsubscribeTokens(keys)
    found: set[int | None] = set()
    for token in _link_tokens(original):
        try:
            found.add(tokens.read(token).campaign_id)
        except TokenError:
            continue
    return found.pop() if len(found) == 1 else None
