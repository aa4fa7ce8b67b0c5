"""mail/verp.py: the signed per-recipient envelope sender, and decoding it."""

from __future__ import annotations

import re

from mail_samples import (
    KEYS,
    parse,
    template,
)

from newsletter.mail.verp import decode_verp, verp_address
from newsletter.store.records import Recipient


def test_envelope_sender_is_verp_on_the_sender_domain_and_decodes() -> None:
    tmpl = template()
    sender = tmpl.envelope_sender(Recipient(42, "ana@example.net"))
    assert re.fullmatch(r"bounces\+42-[0-9a-f]{12}@harbour\.example\.org", sender)
    assert decode_verp(sender, KEYS) == 42
    assert decode_verp(f"<{sender.upper()}>", KEYS) == 42  # MTAs may change the case
    assert "Return-Path" not in parse(tmpl.personalise(Recipient(42, "ana@example.net")))


def test_configured_bounce_address_and_forgery() -> None:
    tmpl = template(bounce_address="returns@mail.harbour.example.org")
    sender = tmpl.envelope_sender(Recipient(9, "a@example.net"))
    assert sender.startswith("returns+9-") and sender.endswith("@mail.harbour.example.org")
    forged = sender.replace("returns+9-", "returns+10-")
    assert decode_verp(forged, KEYS) is None
    assert decode_verp("returns@mail.harbour.example.org", KEYS) is None
    assert decode_verp("someone+x-y@example.net", KEYS) is None
    # non-ASCII in a forged address is a "no", never an error
    mac = sender.partition("-")[2].partition("@")[0]
    assert decode_verp(f"returns+9-{mac[:-1]}é@mail.harbour.example.org", KEYS) is None
    assert decode_verp(f"returns+٩-{mac}@mail.harbour.example.org", KEYS) is None
    # after rotation the old key still decodes bounces of mail sent before
    old = verp_address("b@harbour.example.org", 5, ("test-key-old",))
    assert decode_verp(old, KEYS) == 5
    assert decode_verp(old, ("unrelated",)) is None
