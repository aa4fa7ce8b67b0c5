"""Signed unsubscribe/confirm tokens: round trips, tampering, rotation, expiry."""

from __future__ import annotations

import base64
import json
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from itsdangerous import URLSafeSerializer

from newsletter.errors import ExpiredTokenError, TokenError
from newsletter.mail.tokens import (
    MAX_TOKEN_LENGTH,
    TEST_COPY_ID,
    UNSUBSCRIBE_SALT,
    ConfirmClaim,
    ConfirmTokens,
    UnsubscribeClaim,
    UnsubscribeTokens,
    confirm_url,
    make_confirm_token,
    make_unsubscribe_token,
    read_confirm_token,
    read_unsubscribe_token,
    unsubscribe_url,
)

KEYS = ("key-2026-new", "key-2025-old")
URL_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def _payload(token: str) -> bytes:
    """The JSON inside a token, decoded without checking the signature."""
    part = token.split(".")[0]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _error_text(token: str) -> str:
    with pytest.raises(TokenError) as info:
        read_unsubscribe_token(KEYS, token)
    return str(info.value)


def test_unsubscribe_round_trip_with_and_without_campaign() -> None:
    tokens = UnsubscribeTokens(KEYS)
    assert tokens.read(tokens.make(42, 3)) == UnsubscribeClaim(42, 3, None)
    assert tokens.read(tokens.make(42, 3, 17)) == UnsubscribeClaim(42, 3, 17)


def test_fast_path_matches_itsdangerous_byte_for_byte() -> None:
    tokens = UnsubscribeTokens(KEYS)
    reference = URLSafeSerializer(list(reversed(KEYS)), salt=UNSUBSCRIBE_SALT)
    rng = random.Random(7)
    for _ in range(300):
        ids = [rng.randrange(0, 10**12), rng.randrange(0, 10**6)]
        if rng.random() < 0.5:
            ids.append(rng.randrange(0, 10**9))
        assert tokens.make(*ids) == reference.dumps(ids)


def test_tokens_are_compact_and_url_safe() -> None:
    tokens = UnsubscribeTokens(KEYS)
    for ids, longest in [((0, 0), 40), ((1_234_567, 12), 48), ((10**12, 123_456, 10**9), 72)]:
        token = tokens.make(*ids)
        assert URL_SAFE.fullmatch(token), token
        assert "=" not in token and "%" not in token
        assert len(token) <= longest
    url = unsubscribe_url("https://brief.example.org/", tokens.make(5, 1))
    assert re.fullmatch(r"https://brief\.example\.org/u/[A-Za-z0-9_.-]+", url)
    assert confirm_url("https://brief.example.org", "abc") == "https://brief.example.org/c/abc"


def test_token_holds_only_opaque_ids_never_the_address() -> None:
    token = make_unsubscribe_token(KEYS, 42, 3)
    payload = json.loads(_payload(token))
    assert payload == [42, 3]
    assert "@" not in token and b"@" not in _payload(token)


@pytest.mark.parametrize("position", [0, 1])
def test_changing_an_id_invalidates_the_token(position: int) -> None:
    token = make_unsubscribe_token(KEYS, 42, 3)
    signature = token.split(".", 1)[1]
    ids = [42, 3]
    ids[position] += 1
    forged_payload = base64.urlsafe_b64encode(json.dumps(ids, separators=(",", ":")).encode())
    forged = forged_payload.decode().rstrip("=") + "." + signature
    with pytest.raises(TokenError):
        read_unsubscribe_token(KEYS, forged)


def test_changing_the_signature_invalidates_the_token() -> None:
    token = make_unsubscribe_token(KEYS, 42, 3)
    last = token[-1]
    tampered = token[:-1] + ("A" if last != "A" else "B")
    with pytest.raises(TokenError):
        read_unsubscribe_token(KEYS, tampered)


def test_every_bad_token_gets_the_same_message() -> None:
    good = make_unsubscribe_token(KEYS, 42, 3)
    forged = make_unsubscribe_token(("someone-elses-key",), 42, 3)
    wrong_purpose = make_confirm_token(KEYS, 42, 3)
    messages = {
        _error_text(token)
        for token in [
            forged,
            good[:-3],  # truncated
            good.split(".")[0],  # no signature
            wrong_purpose,
            "",
            "not-a-token",
            "é.ü",
            good + "x",
        ]
    }
    assert len(messages) == 1
    assert "42" not in messages.pop()


def test_payload_of_wrong_shape_is_refused_even_when_signed() -> None:
    reference = URLSafeSerializer(list(reversed(KEYS)), salt=UNSUBSCRIBE_SALT)
    for payload in ([1], [1, 2, 3, 4], {"s": 1}, ["a", 1], [-1, 2], [True, 1]):
        with pytest.raises(TokenError):
            read_unsubscribe_token(KEYS, reference.dumps(payload))


def test_a_token_far_longer_than_ours_is_refused_unread() -> None:
    good = make_unsubscribe_token(KEYS, 42, 3, 7, email="a@example.org")
    assert len(good) < MAX_TOKEN_LENGTH
    padded = good + "A" * MAX_TOKEN_LENGTH
    assert _error_text(padded) == _error_text("not-a-token")
    with pytest.raises(TokenError):
        read_confirm_token(KEYS, "A" * (MAX_TOKEN_LENGTH + 1), max_age_seconds=60)


def test_only_the_test_copy_ids_make_a_test_copy_claim() -> None:
    assert read_unsubscribe_token(KEYS, make_unsubscribe_token(KEYS, TEST_COPY_ID, 0)).is_test_copy
    assert not read_unsubscribe_token(KEYS, make_unsubscribe_token(KEYS, 0, 1)).is_test_copy


def test_token_from_31_days_ago_still_works_after_key_rotation() -> None:
    issued_at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with time_machine.travel(issued_at, tick=False):
        old_token = make_unsubscribe_token(("key-2025-old",), 42, 3, 9)
    rotated = ("key-2026-new", "key-2025-old")
    for later in (timedelta(days=31), timedelta(days=3 * 365)):
        with time_machine.travel(issued_at + later, tick=False):
            assert read_unsubscribe_token(rotated, old_token) == UnsubscribeClaim(42, 3, 9)
    # new tokens are signed with the newest key: the retired key alone cannot read them
    new_token = make_unsubscribe_token(rotated, 42, 3)
    with pytest.raises(TokenError):
        read_unsubscribe_token(("key-2025-old",), new_token)


def test_confirm_token_expires_after_max_age() -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        token = ConfirmTokens(KEYS).make(7, 2)
    max_age = 72 * 3600
    with time_machine.travel(start + timedelta(hours=71), tick=False):
        claim = read_confirm_token(KEYS, token, max_age_seconds=max_age)
        assert claim == ConfirmClaim(7, 2, start.timestamp())
    with (
        time_machine.travel(start + timedelta(hours=73), tick=False),
        pytest.raises(ExpiredTokenError),
    ):
        read_confirm_token(KEYS, token, max_age_seconds=max_age)


def test_tampered_confirm_token_is_invalid_not_expired() -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        token = make_confirm_token(("other-key",), 7, 2)
    with (
        time_machine.travel(start + timedelta(days=30), tick=False),
        pytest.raises(TokenError) as info,
    ):
        read_confirm_token(KEYS, token, max_age_seconds=3600)
    assert not isinstance(info.value, ExpiredTokenError)


def test_unsubscribe_token_is_not_a_confirm_token() -> None:
    with pytest.raises(TokenError):
        read_confirm_token(KEYS, make_unsubscribe_token(KEYS, 1, 1), max_age_seconds=3600)


def test_no_keys_is_a_clear_error() -> None:
    with pytest.raises(TokenError, match="NEWSLETTER_SECRET_KEY"):
        UnsubscribeTokens(())


def test_bad_ids_are_refused_when_minting() -> None:
    tokens = UnsubscribeTokens(KEYS)
    for bad in (-1, True, 1.5, "7"):
        with pytest.raises(ValueError):
            tokens.make(bad, 1)  # type: ignore[arg-type]


def test_a_bound_token_belongs_only_to_its_address_under_any_current_key() -> None:
    old = UnsubscribeTokens(("key-2025-old",)).make(42, 3, 9, email="ann@example.org")
    tokens = UnsubscribeTokens(KEYS)
    claim = tokens.read(old)
    assert (claim.subscriber_id, claim.list_id, claim.campaign_id) == (42, 3, 9)
    assert tokens.owned_by(claim, "ann@example.org")
    assert not tokens.owned_by(claim, "bob@example.org")
    assert not tokens.owned_by(claim, None)  # erased: no address behind the id any more
    assert b"ann" not in _payload(old) and b"@" not in _payload(old)


def test_bound_tokens_take_the_fast_path_byte_for_byte() -> None:
    tokens = UnsubscribeTokens(KEYS)
    reference = URLSafeSerializer(list(reversed(KEYS)), salt=UNSUBSCRIBE_SALT)
    made = tokens.make(7, 2, 5, email="ann@example.org")
    assert made == reference.dumps([7, 2, 5, json.loads(_payload(made))[-1]])
    assert len(made) <= 60


def test_a_bound_confirm_token_belongs_only_to_its_address() -> None:
    tokens = ConfirmTokens(KEYS)
    claim = tokens.read(tokens.make(42, 3, email="ann@example.org"), max_age_seconds=60)
    assert (claim.subscriber_id, claim.list_id) == (42, 3)
    assert tokens.owned_by(claim, "ann@example.org")
    assert not tokens.owned_by(claim, "eve@example.org")
    unbound = tokens.read(tokens.make(42, 3), max_age_seconds=60)
    assert tokens.owned_by(unbound, "anyone@example.org") and not tokens.owned_by(unbound, None)
