"""Signed tokens for unsubscribe and confirm links.

A token is an itsdangerous URL-safe signed payload of opaque integer ids (never an
address): ``[subscriber_id, list_id]`` or ``[subscriber_id, list_id, campaign_id]``,
followed by the person's fingerprint when the address is known at minting time: eight
characters of a keyed HMAC of the address (``person_fingerprint``). A subscriber id alone
would name whoever holds that id later (a database rebuilt by export and import numbers
people anew), so readers check the fingerprint against the address now behind the id
(``owned_by``): a token works only for the person it was made for, and for nobody once
they are erased. Tokens without a fingerprint (minted before it existed) are accepted
for any live subscriber with that id; ids are never reused by the store.
It is made of ``A-Z a-z 0-9 - _ .`` only, about 40-60 characters, so it sits in a URL
and in slot-filled message bytes untouched.

- Each purpose has its own salt, so an unsubscribe token is never a valid confirm token.
- Keys come newest first (``Workspace.secret_keys()``): the first signs, all verify, so
  rotating in a new key keeps every link already in inboxes working.
- Unsubscribe tokens never expire (CAN-SPAM asks for at least 30 days; mail is read for
  years). Confirm tokens carry a timestamp and expire after ``max_age`` seconds.
- Every bad token (forged, tampered, truncated, wrong purpose, unknown key) raises the
  same ``TokenError`` with the same message, so a caller cannot leak which check failed.

The sender mints one token per recipient, so ``UnsubscribeTokens.make`` is the fast path:
it computes what itsdangerous would produce with one pre-keyed HMAC (bench/bench_tokens.py
compares the two) and checks once, at construction, that its output equals
``URLSafeSerializer.dumps``; reading always goes through itsdangerous.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.signer import HMACAlgorithm

from newsletter.errors import ExpiredTokenError, TokenError

UNSUBSCRIBE_SALT = "newsletter.unsubscribe"
PERSON_SALT = b"newsletter.person:"
CONFIRM_SALT = "newsletter.confirm"
UNSUBSCRIBE_PATH = "/u/"
CONFIRM_PATH = "/c/"

# ours are about 40-60 characters; anything far longer is not ours and is not parsed
MAX_TOKEN_LENGTH = 256
# the subscriber and list id in the token of a test copy (``send --test``): nobody
TEST_COPY_ID = 0

_INVALID = "this link is invalid or has been tampered with"
_INVALID_HINT = "use the link exactly as it appears in the email"


@dataclass(frozen=True)
class UnsubscribeClaim:
    """What a valid unsubscribe token says: who leaves which list (and from which send)."""

    subscriber_id: int
    list_id: int
    campaign_id: int | None = None
    fingerprint: str | None = None

    @property
    def is_test_copy(self) -> bool:
        """Whether the token is a test copy's, which names nobody."""
        return self.subscriber_id == self.list_id == TEST_COPY_ID


@dataclass(frozen=True)
class ConfirmClaim:
    """What a valid confirm token says, and when it was issued (UTC seconds)."""

    subscriber_id: int
    list_id: int
    issued_at: float
    fingerprint: str | None = None


def _keys_oldest_first(keys: Sequence[str]) -> list[str]:
    """itsdangerous wants keys oldest to newest; the workspace gives them newest first."""
    if not keys or not all(keys):
        raise TokenError("no signing key configured", hint="set NEWSLETTER_SECRET_KEY")
    return list(reversed(keys))


def _ids(*values: int | None) -> list[int]:
    ids = [v for v in values if v is not None]
    for value in ids:
        # bool is an int subclass; True as an id is always a caller bug
        if type(value) is not int or value < 0:
            raise ValueError(f"token ids must be non-negative integers, got {value!r}")
    return ids


def person_fingerprint(key: str, email: str) -> str:
    """Eight URL-safe characters naming the person with address ``email`` under ``key``.

    Keyed, so the token reveals nothing a guessed address could be checked against.
    """
    digest = hmac.new(key.encode("utf-8"), PERSON_SALT + email.encode("utf-8"), "sha256")
    return base64.urlsafe_b64encode(digest.digest()[:6]).decode("ascii")


def _owned_by(keys: Sequence[str], fingerprint: str | None, email: str | None) -> bool:
    """Whether a claim with ``fingerprint`` was made for the person now at ``email``.

    ``email`` None (erased, gone) matches nothing; a claim without a fingerprint (older
    tokens) matches any live subscriber. Every key is tried, so rotation keeps links working.
    """
    if email is None:
        return False
    if fingerprint is None:
        return True
    return any(hmac.compare_digest(fingerprint, person_fingerprint(key, email)) for key in keys)


def _refuse_long(token: str) -> None:
    """TokenError for a token far longer than any of ours, before any parsing."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError(_INVALID, hint=_INVALID_HINT)


def _claim_ids(payload: Any, sizes: tuple[int, ...]) -> tuple[list[int], str | None]:
    """(ids, fingerprint or None) inside a verified payload, or TokenError for a wrong shape."""
    if not isinstance(payload, list):
        raise TokenError(_INVALID, hint=_INVALID_HINT)
    fingerprint = None
    if payload and isinstance(payload[-1], str):
        fingerprint, payload = payload[-1], payload[:-1]
        if not fingerprint.isascii():  # compare_digest refuses non-ASCII text
            raise TokenError(_INVALID, hint=_INVALID_HINT)
    if len(payload) not in sizes or not all(type(v) is int and v >= 0 for v in payload):
        raise TokenError(_INVALID, hint=_INVALID_HINT)
    return payload, fingerprint


class UnsubscribeTokens:
    """Mints and reads unsubscribe tokens with one set of keys (reuse one per send run).

    ``keys``: signing keys, newest first. ``make`` -> token str; ``read`` -> claim;
    ``owned_by`` -> whether a claim belongs to the person now behind its id.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(keys)
        self._serializer = URLSafeSerializer(_keys_oldest_first(keys), salt=UNSUBSCRIBE_SALT)
        signer = self._serializer.make_signer(UNSUBSCRIBE_SALT)
        self._sep = signer.sep
        algorithm = signer.algorithm
        self._mac = None
        # dumps() builds a signer, JSON and a zlib attempt per call: nearly a tenth of a send's
        # per-message time, so the sender mints with one pre-keyed HMAC instead
        if isinstance(algorithm, HMACAlgorithm):
            derived = signer.derive_key(signer.secret_keys[-1])
            self._mac = hmac.new(derived, digestmod=algorithm.digest_method)
            # guard the fast path against a future itsdangerous changing its format
            probe = (123456, 7, 89)
            fingerprint = person_fingerprint(self._keys[0], "probe@example.org")
            if self._fast(*probe, fingerprint) != self._serializer.dumps([*probe, fingerprint]):
                self._mac = None

    def _fast(
        self, subscriber_id: int, list_id: int, campaign_id: int | None, fingerprint: str | None
    ) -> str:
        assert self._mac is not None
        ids = b",".join(b"%d" % v for v in _ids(subscriber_id, list_id, campaign_id))
        if fingerprint is not None:  # URL-safe base64: nothing to escape inside the quotes
            ids += b',"' + fingerprint.encode("ascii") + b'"'
        payload = base64.urlsafe_b64encode(b"[" + ids + b"]").rstrip(b"=")
        mac = self._mac.copy()
        mac.update(payload)
        signature = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")
        return (payload + self._sep + signature).decode("ascii")

    def make(
        self,
        subscriber_id: int,
        list_id: int,
        campaign_id: int | None = None,
        *,
        email: str | None = None,
    ) -> str:
        """A signed, never-expiring token for (subscriber, list[, campaign]).

        ``email`` (the recipient's stored address) binds the token to that person.
        """
        fingerprint = None if email is None else person_fingerprint(self._keys[0], email)
        if self._mac is not None:
            return self._fast(subscriber_id, list_id, campaign_id, fingerprint)
        payload: list[int | str] = [*_ids(subscriber_id, list_id, campaign_id)]
        if fingerprint is not None:
            payload.append(fingerprint)
        return str(self._serializer.dumps(payload))

    def read(self, token: str) -> UnsubscribeClaim:
        """The claim inside ``token``; TokenError if it is not one we signed."""
        _refuse_long(token)
        try:
            payload = self._serializer.loads(token)
        except (BadData, UnicodeError, ValueError):
            raise TokenError(_INVALID, hint=_INVALID_HINT) from None
        ids, fingerprint = _claim_ids(payload, (2, 3))
        return UnsubscribeClaim(ids[0], ids[1], ids[2] if len(ids) == 3 else None, fingerprint)

    def owned_by(self, claim: UnsubscribeClaim, email: str | None) -> bool:
        """Whether ``claim`` was made for the subscriber whose address is now ``email``."""
        return _owned_by(self._keys, claim.fingerprint, email)


class ConfirmTokens:
    """Mints and reads expiring double opt-in confirm tokens (keys newest first)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(keys)
        self._serializer = URLSafeTimedSerializer(_keys_oldest_first(keys), salt=CONFIRM_SALT)

    def make(self, subscriber_id: int, list_id: int, *, email: str | None = None) -> str:
        """A signed token for (subscriber, list) stamped with the current time.

        ``email`` (the subscriber's stored address) binds the token to that person.
        """
        payload: list[int | str] = [*_ids(subscriber_id, list_id)]
        if email is not None:
            payload.append(person_fingerprint(self._keys[0], email))
        return str(self._serializer.dumps(payload))

    def read(self, token: str, *, max_age_seconds: float) -> ConfirmClaim:
        """The claim inside ``token``.

        Raises ExpiredTokenError (a TokenError) when it is older than ``max_age_seconds``,
        TokenError when it is not one we signed.
        """
        _refuse_long(token)
        try:
            payload, issued = self._serializer.loads(
                token, max_age=int(max_age_seconds), return_timestamp=True
            )
        except SignatureExpired:
            # itsdangerous checks the signature before the age: only genuine tokens get here
            raise ExpiredTokenError(
                "this confirmation link has expired", hint="subscribe again for a new link"
            ) from None
        except (BadData, UnicodeError, ValueError):
            raise TokenError(_INVALID, hint=_INVALID_HINT) from None
        ids, fingerprint = _claim_ids(payload, (2,))
        return ConfirmClaim(ids[0], ids[1], issued.timestamp(), fingerprint)

    def owned_by(self, claim: ConfirmClaim, email: str | None) -> bool:
        """Whether ``claim`` was made for the subscriber whose address is now ``email``."""
        return _owned_by(self._keys, claim.fingerprint, email)


def make_unsubscribe_token(
    keys: Sequence[str],
    subscriber_id: int,
    list_id: int,
    campaign_id: int | None = None,
    *,
    email: str | None = None,
) -> str:
    """One unsubscribe token (for many, keep one ``UnsubscribeTokens``)."""
    return UnsubscribeTokens(keys).make(subscriber_id, list_id, campaign_id, email=email)


def read_unsubscribe_token(keys: Sequence[str], token: str) -> UnsubscribeClaim:
    """The claim in an unsubscribe token, or TokenError."""
    return UnsubscribeTokens(keys).read(token)


def make_confirm_token(
    keys: Sequence[str], subscriber_id: int, list_id: int, *, email: str | None = None
) -> str:
    """One confirm token stamped now."""
    return ConfirmTokens(keys).make(subscriber_id, list_id, email=email)


def read_confirm_token(keys: Sequence[str], token: str, *, max_age_seconds: float) -> ConfirmClaim:
    """The claim in a confirm token; ExpiredTokenError when too old, TokenError when bad."""
    return ConfirmTokens(keys).read(token, max_age_seconds=max_age_seconds)


def unsubscribe_url(base_url: str, token: str) -> str:
    """``{base_url}/u/{token}`` (base_url without a trailing slash is normalised)."""
    return base_url.rstrip("/") + UNSUBSCRIBE_PATH + token


def confirm_url(base_url: str, token: str) -> str:
    """``{base_url}/c/{token}``."""
    return base_url.rstrip("/") + CONFIRM_PATH + token
