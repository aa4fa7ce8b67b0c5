"""VERP: a per-recipient envelope sender that names the subscriber, signed so it cannot
be forged, and reading the subscriber back from the address a bounce comes to."""

from __future__ import annotations

import hmac
from collections.abc import Sequence


def _verp_mac(key: str, subscriber_id: int) -> str:
    digest = hmac.new(key.encode("utf-8"), b"newsletter.verp:%d" % subscriber_id, "sha256")
    # lower-case hex: some MTAs fold the case of local parts
    return digest.hexdigest()[:12]


def verp_address(bounce_address: str, subscriber_id: int, keys: Sequence[str]) -> str:
    """Per-recipient envelope sender: ``local+<id>-<mac>@domain`` from ``bounce_address``.

    The MAC (newest key) makes the id unforgeable, so a fake bounce cannot suppress
    someone else. ``decode_verp`` reverses it.
    """
    local, _, domain = bounce_address.rpartition("@")
    if not local or not domain or not keys:
        raise ValueError(f"cannot build a VERP address from {bounce_address!r}")
    return f"{local}+{subscriber_id}-{_verp_mac(keys[0], subscriber_id)}@{domain}"


def decode_verp(address: str, keys: Sequence[str]) -> int | None:
    """The subscriber id inside a VERP ``address`` made by ``verp_address``, else None.

    Accepts ``<...>`` brackets and any letter case; checks the MAC against every key.
    """
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    _, plus, tag = local.rpartition("+")
    id_text, dash, mac = tag.partition("-")
    # ASCII only: str.isdigit() takes other scripts' digits, and compare_digest refuses
    # non-ASCII text (a TypeError, not a "no")
    if not plus or not dash or not (id_text.isascii() and id_text.isdigit()):
        return None
    if len(id_text) > 18 or not mac.isascii():
        return None
    subscriber_id = int(id_text)
    for key in keys:
        if hmac.compare_digest(mac, _verp_mac(key, subscriber_id)):
            return subscriber_id
    return None
