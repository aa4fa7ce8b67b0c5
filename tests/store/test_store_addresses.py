"""Address normal form and hash: the cached fast path agrees with email-validator itself."""

from __future__ import annotations

import hashlib
import re

import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter.errors import AddressError
from newsletter.store.addresses import address_hash, normalize_address

TRICKY = [
    "plain@example.com",
    "Mixed.Case@Example.COM",
    "  padded@example.org  ",
    "first.last+tag@sub.example.co.uk",
    "o'brien@example.ie",
    "a!#$%&'*+/=?^_`{|}~-b@example.com",
    "xn--bcher-kva@xn--bcher-kva.example",
    "user@xn--bcher-kva.example",
    "inés@bücher.example",
    "POSTMASTER@example.com",
    "x" * 64 + "@example.com",
    "x" * 65 + "@example.com",
    "a@" + "b" * 63 + ".com",
    ".leading@example.com",
    "trailing.@example.com",
    "dou..ble@example.com",
    "no-at-sign.example.com",
    "two@@example.com",
    "a@b",
    "a@localhost",
    "a@example.test",
    "a@-dash.example",
    "a@example..com",
    "a@123.123.123.123",
    "a@[127.0.0.1]",
    '"quoted local"@example.com',
    "Display Name <display@example.com>",
    "space in@example.com",
    "a@exa mple.com",
    "tab\t@example.com",
]


def _reference(raw: str) -> str | None:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


@pytest.mark.parametrize("raw", TRICKY)
def test_normal_form_matches_email_validator(raw: str) -> None:
    expected = _reference(raw)
    if expected is None:
        with pytest.raises(AddressError):
            normalize_address(raw)
    else:
        assert normalize_address(raw) == expected
        assert normalize_address(raw) == normalize_address(raw)  # cached domain: same answer


def test_error_message_names_the_address() -> None:
    with pytest.raises(AddressError, match=re.escape("'dou..ble@example.com' is not a valid")):
        normalize_address("dou..ble@example.com")
    with pytest.raises(AddressError, match="empty email address"):
        normalize_address("   ")


def test_hash_is_plain_sha256_of_the_normal_form() -> None:
    normal = normalize_address("Ada@Example.com")
    assert address_hash(normal) == hashlib.sha256(b"ada@example.com").hexdigest()
