"""Unsubscribe requests that arrive by mail, through the List-Unsubscribe ``mailto:``.

Every message offers ``<mailto:{unsubscribe mailbox}?subject=unsubscribe%20{token}>``
beside the one-click link (``message.build_template``), with the recipient's signed
unsubscribe token, the same one the link carries. An opt-out must be honoured whichever
way it is offered, so ``newsletter bounces`` hands each message that is not a bounce or
complaint report to ``process_request``.

What counts as a request
------------------------
A message whose subject, after any "Re:", "Fwd:", "Fw:", "AW:" or "WG:" prefixes, starts
with the word "unsubscribe", or one addressed to the unsubscribe mailbox (``[sender]
unsubscribe_mailbox``, plus-addresses included). An auto-reply (``Auto-Submitted:
auto-replied``, RFC 3834) answers some other message and asks for nothing.

What it does
------------
- A valid token in the subject leaves the list it names, through the same store call
  and with the same kind of consent record as the one-click POST (source ``mail``, via
  ``mailto``); a test copy's token acts on nobody.
- Without a valid token (none, or one that does not verify or names nobody on its
  list), the From address asks for itself: if it is a subscriber's, that subscriber is
  unsubscribed from every list (an opt-out that names no list stops all mail) and the
  address is reported, since a From line can be forged. A forged token never acts on
  the subscriber it names. An address we do not have is left alone.
- Each request mail is remembered by key (``store.unsubscribe_requests``), so running
  over the same mailbox again, even after the person signed up again, changes nothing.

Neither the token nor the subject is ever logged: the token is a credential.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import unquote

from newsletter.audience.bounces.parse import first_header, header_values, mail_addresses
from newsletter.errors import AddressError, TokenError
from newsletter.mail.settings import MessageSettings
from newsletter.mail.tokens import MAX_TOKEN_LENGTH, UnsubscribeTokens
from newsletter.store import Consent, Store
from newsletter.store.unsubscribe_requests import record_request, request_seen
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

# "unsubscribe" as the subject's first word, after reply and forward prefixes
_SUBJECT = re.compile(r"\s*(?:(?:re|fwd?|aw|wg)\s*:\s*)*unsubscribe(?:\s+(.*))?$", re.I | re.S)
# an itsdangerous token: base64url payload "." base64url signature
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_WORD_EDGES = "<>()[]\"',;:."  # punctuation a person may type around a token


@dataclass(frozen=True)
class RequestSettings:
    """``keys``: signing keys, newest first; ``mailbox``: the unsubscribe address ("" none)."""

    keys: tuple[str, ...]
    mailbox: str = ""

    @classmethod
    def from_workspace(cls, workspace: Workspace) -> RequestSettings:
        """The signing keys and ``[sender] unsubscribe_mailbox`` of ``workspace``."""
        message = MessageSettings.from_workspace(workspace)
        return cls(keys=message.secret_keys, mailbox=message.unsubscribe_mailbox)


@dataclass(frozen=True)
class UnsubscribeRequest:
    """One request mail: token-shaped words of its subject, its From address, Message-ID."""

    tokens: tuple[str, ...]
    sender: str
    message_id: str


class RequestResult(enum.StrEnum):
    """What one request mail came to."""

    BY_TOKEN = "token"  # a valid token: left the list it names
    BY_SENDER = "sender"  # no valid token: the From address left every list
    UNCHANGED = "unchanged"  # already unsubscribed, or a test copy's token
    UNMATCHED = "unmatched"  # no valid token, and the sender is nobody we have
    DUPLICATE = "duplicate"  # this mail was processed before


@dataclass(frozen=True)
class RequestOutcome:
    """``result``; the ``subscriber_id`` acted on; ``address``: the subscriber's address
    when the sender's address decided (to report); ``forged``: a token-shaped word in the
    subject did not verify or named nobody on its list.
    """

    result: RequestResult
    subscriber_id: int | None = None
    address: str = ""
    forged: bool = False


def read_request(
    data: bytes, *, mailbox: str, envelope_recipient: str | None = None
) -> UnsubscribeRequest | None:
    """The raw bytes of one message -> the unsubscribe request it makes, or None.

    ``mailbox`` is the unsubscribe address ("" when none is configured);
    ``envelope_recipient`` the RCPT TO the message arrived with, when known.
    """
    message = BytesHeaderParser(policy=policy.default).parsebytes(data)
    if first_header(message, "Auto-Submitted").strip().lower().startswith("auto-replied"):
        return None
    # a client may leave the mailto's %20 encoded in the subject it writes
    asked = _SUBJECT.match(unquote(" ".join(first_header(message, "Subject").split())))
    if asked is None and not _addressed_to(message, mailbox, envelope_recipient):
        return None
    words = (asked.group(1) or "").split() if asked else []
    tokens = [word.strip(_WORD_EDGES) for word in words]
    senders = mail_addresses(header_values(message, "From"))
    return UnsubscribeRequest(
        tokens=tuple(
            token
            for token in tokens
            if len(token) <= MAX_TOKEN_LENGTH and _TOKEN_SHAPE.fullmatch(token)
        ),
        sender=senders[0] if senders else "",
        message_id="".join(first_header(message, "Message-ID").split())[:200],
    )


def process_request(
    store: Store,
    data: bytes,
    settings: RequestSettings,
    *,
    key: str,
    origin: str = "message",
    envelope_recipient: str | None = None,
) -> RequestOutcome | None:
    """Act on the unsubscribe request in ``data`` -> what it came to; None if it is none.

    ``key`` (64 hex characters, the same for the same mail) remembers the mail so a
    rerun changes nothing; ``origin`` names it in log lines; ``envelope_recipient`` is
    the RCPT TO it arrived with, when known.
    """
    request = read_request(data, mailbox=settings.mailbox, envelope_recipient=envelope_recipient)
    if request is None:
        return None
    if request_seen(store, key):
        log.info("%s: unsubscribe request already processed", origin)
        return RequestOutcome(RequestResult.DUPLICATE)
    outcome = _by_token(store, request, settings, key, origin)
    if outcome is None or outcome.forged:
        outcome = _by_sender(store, request, key, origin, forged=outcome is not None)
    # recorded after acting: a crash in between repeats a no-op, and never loses a request
    record_request(store, key, str(outcome.result))
    return outcome


def _by_token(
    store: Store, request: UnsubscribeRequest, settings: RequestSettings, key: str, origin: str
) -> RequestOutcome | None:
    """Unsubscribe through the first valid token; None without any token-shaped word."""
    if not request.tokens:
        return None
    tokens = UnsubscribeTokens(settings.keys)
    for token in request.tokens:
        try:
            claim = tokens.read(token)
        except TokenError:
            continue
        if claim.is_test_copy:
            log.info("%s: unsubscribe request from a test copy, nothing to do", origin)
            return RequestOutcome(RequestResult.UNCHANGED)
        list_name = _list_of(store, claim.subscriber_id, claim.list_id)
        if list_name is None:
            continue  # signed by us, but the subscriber or their membership is gone
        detail: dict[str, Any] = {"via": "mailto"}
        if claim.campaign_id is not None:
            detail["campaign_id"] = claim.campaign_id
        changed = store.unsubscribe(
            claim.subscriber_id, consent=_consent(request, key, detail), list_name=list_name
        )
        log.info(
            "%s: subscriber %d %s %s (mailto link)",
            origin,
            claim.subscriber_id,
            "unsubscribed from" if changed else "had already left",
            list_name,
        )
        result = RequestResult.BY_TOKEN if changed else RequestResult.UNCHANGED
        return RequestOutcome(result, claim.subscriber_id)
    return RequestOutcome(RequestResult.UNMATCHED, forged=True)


def _list_of(store: Store, subscriber_id: int, list_id: int) -> str | None:
    """The name of list ``list_id`` if ``subscriber_id`` exists and is (or was) on it."""
    subscriber = store.get(subscriber_id)
    if subscriber is None:
        return None
    return next((m.list_name for m in subscriber.memberships if m.list_id == list_id), None)


def _by_sender(
    store: Store, request: UnsubscribeRequest, key: str, origin: str, *, forged: bool
) -> RequestOutcome:
    """Unsubscribe the From address from every list, if it is a subscriber's."""
    try:
        subscriber = store.get_by_email(request.sender) if request.sender else None
    except AddressError:
        subscriber = None
    if subscriber is None or subscriber.email is None:
        log.info(
            "%s: unsubscribe request from nobody on our lists%s, ignored",
            origin,
            " (its token did not verify)" if forged else "",
        )
        return RequestOutcome(RequestResult.UNMATCHED, forged=forged)
    detail: dict[str, Any] = {"via": "sender address"}
    if forged:
        detail["forged_link"] = True
    changed = store.unsubscribe(subscriber.id, consent=_consent(request, key, detail))
    log.info(
        "%s: subscriber %d %s every list (asked by mail from their address%s)",
        origin,
        subscriber.id,
        "unsubscribed from" if changed else "had already left",
        ", with a token that did not verify" if forged else "",
    )
    if not changed:
        return RequestOutcome(RequestResult.UNCHANGED, subscriber.id, forged=forged)
    return RequestOutcome(RequestResult.BY_SENDER, subscriber.id, subscriber.email, forged)


def _consent(request: UnsubscribeRequest, key: str, detail: dict[str, Any]) -> Consent:
    """The consent-trail record of a request mail: source "mail", the mail's key and id."""
    detail["request"] = key
    if request.message_id.isprintable() and request.message_id:
        detail["message_id"] = request.message_id
    return Consent(source="mail", detail=detail)


def _addressed_to(message: Message, mailbox: str, envelope_recipient: str | None) -> bool:
    """True when the message was sent to ``mailbox`` (or a plus-address of it)."""
    if not mailbox:
        return False
    local, _, domain = mailbox.lower().rpartition("@")
    values = [envelope_recipient] if envelope_recipient else []
    for name in ("Delivered-To", "X-Original-To", "To", "Cc"):
        values += header_values(message, name)
    for address in mail_addresses(values):
        their_local, _, their_domain = address.lower().rpartition("@")
        if their_domain == domain and (their_local == local or their_local.startswith(local + "+")):
            return True
    return False


__all__ = [
    "RequestOutcome",
    "RequestResult",
    "RequestSettings",
    "UnsubscribeRequest",
    "process_request",
    "read_request",
]
