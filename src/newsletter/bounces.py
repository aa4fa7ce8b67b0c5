"""Bounces and complaints that come back by mail -> classification -> suppression.

What arrives
------------
Every campaign message goes out with a VERP envelope sender (``message.verp_address``:
``bounces+<id>-<mac>@domain``), so a delivery status notification (RFC 3464) comes
back to an address that names the subscriber and is signed. Feedback-loop complaints
(ARF, RFC 5965) come to whatever address the mailbox provider was given, with our
original message attached, whose List-Unsubscribe link carries a signed token.

``classify(data, ...)`` reads one message with the stdlib ``email`` parser
(``policy.default``; it splits ``message/delivery-status`` into its header blocks
itself), once, handing it only the first ``SEGMENT_BUDGET`` bytes of each MIME body, so
a report with a large original attached costs little more than its bytes; it says what
it is:

- ``multipart/report; report-type=delivery-status``: per recipient, ``Action: failed``
  with a 5.x.x ``Status`` is a hard bounce; 4.x.x, or ``Action: delayed``, a soft one;
  ``delivered``, ``relayed`` and ``expanded`` ask for nothing. A report naming several
  recipients counts as its most severe one.
- ``multipart/report; report-type=feedback-report`` with a ``message/feedback-report``
  part: a complaint (``Feedback-Type`` abuse, fraud, virus, other); ``not-spam`` and
  ``auth-failure`` reports ask for nothing.
- anything else (an auto-reply, a human answer): not a report.

Who it is about
---------------
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

What it does
------------
``process_message`` records a matched report once (``store.bounce_reports``: the key
is a hash of the report's Message-ID) and applies it: a hard bounce or a complaint
suppresses the subscriber everywhere at once; soft bounces suppress once
``bounces.soft_limit`` different messages soft-bounced within
``bounces.soft_window_days`` (the Message-ID of the attached original tells the
messages apart, so repeated delay warnings about one message count once).
``process_paths`` does that for .eml files, Maildir folders and mbox files and returns
a ``BounceRunReport`` for the CLI to print; a message that fails in an unexpected way
is listed there and the run goes on with the next one. A message that is not a report
may be someone asking to leave through the List-Unsubscribe ``mailto:``: it goes to
``unsubscribe_mail.process_request``, and the report counts what that did.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import logging
import mailbox
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.errors import HeaderParseError
from email.message import Message
from email.parser import BytesFeedParser, HeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import InterfaceError, OperationalError

from newsletter.errors import NewsletterError, TokenError
from newsletter.mail.settings import MessageSettings
from newsletter.mail.tokens import UNSUBSCRIBE_PATH, UnsubscribeTokens
from newsletter.mail.verp import decode_verp
from newsletter.store import AddressError, Store, open_store_for, utcnow
from newsletter.store.bounce_reports import (
    COMPLAINT,
    HARD,
    SOFT,
    BounceEvent,
    record_bounce,
)
from newsletter.unsubscribe_mail import (
    RequestOutcome,
    RequestResult,
    RequestSettings,
    process_request,
)
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)


class BounceSourceError(NewsletterError):
    """A path given to ``newsletter bounces`` does not exist."""


class Kind(enum.StrEnum):
    """What a message is, as far as bounce processing goes."""

    HARD = HARD
    SOFT = SOFT
    COMPLAINT = COMPLAINT
    NO_ACTION = "no-action"  # a report asking for nothing: delivered, relayed, not-spam
    NOT_A_REPORT = "not-a-report"


_SEVERITY = {Kind.NO_ACTION: 0, Kind.SOFT: 1, Kind.HARD: 2}
_NO_FAILURE_ACTIONS = frozenset({"delivered", "relayed", "expanded"})
_COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
# RFC 3463 status code at the start of a Status field: class.subject.detail
_STATUS = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# an SMTP Diagnostic-Code text: the reply code, maybe followed by an enhanced code
_SMTP_REPLY = re.compile(r"\s*([245])\d\d(?:[ -]+([245]\.\d{1,3}\.\d{1,3})(?![\d.]))?(?!\d)")
_BRACKETED = re.compile(r"<([^<>]*)>")
# header values that, once parsed, a hostile message might make the header registry choke on
_HEADER_ERRORS = (HeaderParseError, ValueError, IndexError, TypeError, AttributeError)


@dataclass(frozen=True)
class Classification:
    """One message read as a bounce or complaint report.

    ``kind``: see ``Kind``. ``subscriber_id``: from a verified VERP address or
    unsubscribe token (``matched_by`` "verp" or "token"), else None. ``forged``: a
    reference that looks like ours did not verify (ignore the message). ``addresses``:
    unsigned recipient addresses the report names, for a lookup when no signed
    reference was found. ``status``: enhanced status code of a bounce, feedback type
    of a complaint. ``report_key``: 64 hex characters, the same for the same report.
    ``reported_at``: the report's Date (UTC) or None. ``original_message_id``: the
    Message-ID of the attached original ("" when nothing is attached).
    """

    kind: Kind
    report_key: str
    subscriber_id: int | None = None
    matched_by: str = ""
    forged: bool = False
    addresses: tuple[str, ...] = ()
    status: str = ""
    action: str = ""
    diagnostic: str = ""
    message_id: str = ""
    reported_at: datetime | None = None
    original_message_id: str = ""


@dataclass(frozen=True)
class BounceSettings:
    """What classifying and applying reports needs from the workspace.

    ``keys``: signing keys, newest first; ``bounce_address``: the mailbox VERP
    addresses derive from; ``soft_limit`` soft bounces within ``soft_window``
    suppress an address; ``trust_unsigned``: let a report without a signed reference
    act on a known address it names.
    """

    keys: tuple[str, ...]
    bounce_address: str
    soft_limit: int = 3
    soft_window: timedelta = timedelta(days=30)
    trust_unsigned: bool = False

    @classmethod
    def from_workspace(cls, workspace: Workspace) -> BounceSettings:
        """Keys, the VERP base address and the [bounces] limits of ``workspace``."""
        message = MessageSettings.from_workspace(workspace)
        limits = workspace.config.bounces
        return cls(
            keys=message.secret_keys,
            bounce_address=message.envelope_base,
            soft_limit=limits.soft_limit,
            soft_window=timedelta(days=limits.soft_window_days),
            trust_unsigned=limits.trust_unsigned,
        )


# --- classifying one message -----------------------------------------------------------------


def classify(
    data: bytes,
    *,
    keys: Sequence[str],
    bounce_address: str,
    envelope_recipient: str | None = None,
) -> Classification:
    """The raw bytes of one message -> what it reports and about whom (no database).

    ``keys`` verify VERP addresses and unsubscribe tokens; ``bounce_address`` is the
    base VERP addresses are made from (``bounces@domain``); ``envelope_recipient`` the
    RCPT TO the message arrived with, when the caller knows it.
    """
    message = _parse(data)
    message_id = _first(message, "Message-ID").strip()
    base = Classification(
        kind=Kind.NOT_A_REPORT,
        report_key=_report_key(message_id, data),
        message_id=message_id,
        reported_at=_date_of(message),
    )
    if message.get_content_type() != "multipart/report":
        return base
    report_type = str(message.get_param("report-type", "") or "").strip().lower()
    parts = list(_parts(message))
    if report_type == "delivery-status":
        return _classify_dsn(message, parts, base, keys, bounce_address, envelope_recipient)
    if report_type == "feedback-report":
        return _classify_arf(message, parts, base, keys, bounce_address, envelope_recipient)
    return base


def _classify_dsn(
    message: Message,
    parts: list[Message],
    base: Classification,
    keys: Sequence[str],
    bounce_address: str,
    envelope_recipient: str | None,
) -> Classification:
    """RFC 3464: the most severe per-recipient block decides."""
    status_part = _part_of_type(parts, "message/delivery-status")
    if status_part is None:
        return base
    blocks = [block for block in _blocks(status_part) if _first(block, "Action")]
    if not blocks:
        return base
    kind, block = max(
        ((_recipient_kind(block), block) for block in blocks), key=lambda kb: _SEVERITY[kb[0]]
    )
    original = _attached_headers(parts)
    references = [
        *_verp_references(_recipients(message, envelope_recipient), keys, bounce_address),
        *_token_references(original, keys),
    ]
    addresses = [
        *_typed_addresses(_first(block, "Final-Recipient")),
        *_typed_addresses(_first(block, "Original-Recipient")),
    ]
    return _with_subscriber(
        base,
        references,
        kind=kind,
        addresses=tuple(dict.fromkeys(addresses)),
        status=_status_of(block),
        action=_action_of(block),
        diagnostic=" ".join(_first(block, "Diagnostic-Code").split()),
        original_message_id=_message_id_of(original),
    )


def _classify_arf(
    message: Message,
    parts: list[Message],
    base: Classification,
    keys: Sequence[str],
    bounce_address: str,
    envelope_recipient: str | None,
) -> Classification:
    """RFC 5965: a feedback report about our attached message."""
    report_part = _part_of_type(parts, "message/feedback-report")
    if report_part is None:
        return base
    fields = next(iter(_blocks(report_part)), None)
    if fields is None:
        return base
    feedback_type = _first(fields, "Feedback-Type").strip().lower()
    kind = Kind.COMPLAINT if feedback_type in _COMPLAINT_TYPES else Kind.NO_ACTION
    original = _attached_headers(parts)
    senders = [*_header_values(fields, "Original-Mail-From")]
    if original is not None:
        senders += _header_values(original, "Return-Path")
    references = [
        *_token_references(original, keys),
        *_verp_references(_mail_addresses(senders), keys, bounce_address),
        *_verp_references(_recipients(message, envelope_recipient), keys, bounce_address),
    ]
    addresses = _mail_addresses(_header_values(fields, "Original-Rcpt-To"))
    if original is not None:
        addresses += _mail_addresses(_header_values(original, "To"))
    return _with_subscriber(
        base,
        references,
        kind=kind,
        addresses=tuple(dict.fromkeys(addresses)),
        status=feedback_type,
        action="complaint" if kind is Kind.COMPLAINT else feedback_type,
        original_message_id=_message_id_of(original),
    )


def _with_subscriber(
    base: Classification, references: list[tuple[str, int | None]], **values: Any
) -> Classification:
    """``base`` with ``values`` and the subscriber its signed references agree on.

    Every reference in our shape must verify and all must name the same subscriber;
    one that does not verify, or two that disagree, mean someone edited the report:
    it is marked forged and names nobody.
    """
    ids = {subscriber_id for _, subscriber_id in references}
    if not references:
        return replace(base, **values)
    if None in ids or len(ids) > 1:
        return replace(base, **values, forged=True)
    matched_by, subscriber_id = references[0]
    return replace(base, **values, subscriber_id=subscriber_id, matched_by=matched_by)


def _recipient_kind(block: Message) -> Kind:
    """One per-recipient block -> hard, soft or no action (RFC 3464 Action + Status)."""
    action = _action_of(block)
    if action in _NO_FAILURE_ACTIONS:
        return Kind.NO_ACTION
    if action == "delayed":
        return Kind.SOFT
    if action == "failed":
        # failed without a 5.x.x status (4.x.x after retries, or none given) may pass:
        # only a permanent failure suppresses at once
        return Kind.HARD if _status_of(block).startswith("5.") else Kind.SOFT
    return Kind.NO_ACTION


def _action_of(block: Message) -> str:
    words = _first(block, "Action").split()
    return words[0].lower() if words else ""


def _status_of(block: Message) -> str:
    """The block's status code; else the one its SMTP Diagnostic-Code starts with; else ""."""
    found = _STATUS.match(_first(block, "Status"))
    if found:
        return ".".join(found.groups())
    diagnostic_type, _, text = _first(block, "Diagnostic-Code").partition(";")
    reply = _SMTP_REPLY.match(text) if diagnostic_type.strip().lower() == "smtp" else None
    if reply is None:
        return ""
    return reply.group(2) or f"{reply.group(1)}.0.0"


def _typed_addresses(value: str) -> list[str]:
    """``rfc822; someone@example.org`` (RFC 3464 address-type; address) -> [address]."""
    address_type, semicolon, address = value.partition(";")
    if not semicolon or address_type.strip().lower() != "rfc822":
        return []
    return _mail_addresses([address])


# --- references to a subscriber --------------------------------------------------------------


def _recipients(message: Message, envelope_recipient: str | None) -> list[str]:
    """Where the report was delivered: the envelope recipient first, then the headers."""
    values = [envelope_recipient] if envelope_recipient else []
    for name in ("Delivered-To", "X-Original-To", "To"):
        values += _header_values(message, name)
    return _mail_addresses(values)


def _verp_references(
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


def _token_references(
    original: Message | None, keys: Sequence[str]
) -> list[tuple[str, int | None]]:
    """("token", id or None) for each of our unsubscribe links in ``original``'s headers."""
    if original is None:
        return []
    tokens = UnsubscribeTokens(keys)
    found: list[tuple[str, int | None]] = []
    for value in _header_values(original, "List-Unsubscribe"):
        for uri in (found_uri.strip() for found_uri in _BRACKETED.findall(value)):
            try:
                path = urlsplit(uri).path
            except ValueError:  # "Invalid IPv6 URL" and the like: we never write such links
                continue
            if not uri.lower().startswith(("https://", "http://")) or UNSUBSCRIBE_PATH not in path:
                continue  # a mailto: link, or not one of ours
            token = path.rsplit(UNSUBSCRIBE_PATH, 1)[1]
            try:
                found.append(("token", tokens.read(token).subscriber_id))
            except TokenError:
                found.append(("token", None))
    return found


# --- reading the message with the email package ----------------------------------------------

# Bytes of each MIME segment (the text from one line starting with "--" to the next)
# handed to the parser; the rest of a long body is left out.
SEGMENT_BUDGET = 256 * 1024
_SEGMENT_START = re.compile(rb"^--", re.MULTILINE)


def _parse(data: bytes) -> Message:
    """``data`` -> the message as the ``email`` package parses it, each body cut to its
    first ``SEGMENT_BUDGET`` bytes (at a line end).

    What classifies a report (the headers, the status or feedback block, the returned
    message's headers) sits at the start of its part; a returned original of several MB
    would otherwise cost the parser many times its size (text, lines, joined payload).
    Boundary lines start with "--", so every part still opens and closes where it did.
    """
    parser = BytesFeedParser(policy=policy.default)
    found = (match.start() for match in _SEGMENT_START.finditer(data))
    for start, end in itertools.pairwise(itertools.chain([0], found, [len(data)])):
        if end - start > SEGMENT_BUDGET:
            cut = data.rfind(b"\n", start, start + SEGMENT_BUDGET) + 1
            end = cut if cut > start else start + SEGMENT_BUDGET
        if end > start:
            parser.feed(data[start:end])
    message = parser.close()
    assert isinstance(message, Message)
    return message


def _parts(message: Message) -> Iterator[Message]:
    """The direct subparts of a multipart message (none for a malformed one)."""
    payload = message.get_payload()
    if isinstance(payload, list):
        yield from (part for part in payload if isinstance(part, Message))


def _part_of_type(parts: list[Message], content_type: str) -> Message | None:
    return next((part for part in parts if part.get_content_type() == content_type), None)


def _blocks(part: Message) -> list[Message]:
    """The header blocks the parser made of a message/delivery-status or feedback part."""
    return list(_parts(part))


def _attached_headers(parts: list[Message]) -> Message | None:
    """The headers of the original message a report returns (message/rfc822 or headers)."""
    for part in parts:
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            inner = next(_parts(part), None)
            if inner is not None:
                return inner
        if content_type in ("text/rfc822-headers", "message/global-headers"):
            raw = part.get_payload(decode=True)  # undoes any transfer encoding
            if not isinstance(raw, bytes):
                continue
            text = raw.decode("utf-8", "replace")
            return HeaderParser(policy=policy.default).parsestr(text, headersonly=True)
    return None


def _message_id_of(original: Message | None) -> str:
    """The Message-ID of an attached original, whitespace folded away ("" without one)."""
    return "".join(_first(original, "Message-ID").split()) if original is not None else ""


def _header_values(message: Message, name: str) -> list[str]:
    """Every value of header ``name`` as text ([] when absent or unparseable)."""
    try:
        return [str(value) for value in message.get_all(name) or []]
    except _HEADER_ERRORS:
        return []


def _first(message: Message, name: str) -> str:
    values = _header_values(message, name)
    return values[0] if values else ""


def _mail_addresses(values: Iterable[str]) -> list[str]:
    """The bare addresses in header values (display names and brackets dropped)."""
    try:
        pairs = getaddresses([value for value in values if value])
    except _HEADER_ERRORS:
        return []
    return [address.strip() for _, address in pairs if "@" in address]


def _date_of(message: Message) -> datetime | None:
    """The message's Date as aware UTC, or None when missing or unreadable."""
    try:
        header: Any = message["Date"]
        value = getattr(header, "datetime", None)
    except _HEADER_ERRORS:
        return None
    if not isinstance(value, datetime):
        return None
    # "-0000" (zone unknown) parses naive: it is UTC time all the same
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_HASH_CHUNK = 1 << 20  # hashing a report's bytes a chunk at a time, never a whole copy


def _report_key(message_id: str, data: bytes) -> str:
    """The same key for the same report: its Message-ID, else its bytes (any line ends)."""
    if message_id:
        return hashlib.sha256(b"message-id:" + message_id.encode("utf-8", "replace")).hexdigest()
    digest = hashlib.sha256(b"bytes:")
    carry = b""  # a CR at a chunk's end may start a CRLF: hash it with the next chunk
    for offset in range(0, len(data), _HASH_CHUNK):
        chunk = carry + data[offset : offset + _HASH_CHUNK]
        carry = b"\r" if chunk.endswith(b"\r") else b""
        digest.update(chunk[: len(chunk) - len(carry)].replace(b"\r\n", b"\n"))
    digest.update(carry)
    return digest.hexdigest()


def _original_key(original_message_id: str) -> str:
    """The same key for every report about one sent message ("" when it is unknown)."""
    if not original_message_id:
        return ""
    return hashlib.sha256(b"original:" + original_message_id.encode("utf-8", "replace")).hexdigest()


# --- applying reports --------------------------------------------------------------------------


class Result(enum.StrEnum):
    """What processing one message came to."""

    APPLIED = "applied"  # recorded (and maybe suppressed someone)
    DUPLICATE = "duplicate"  # this report was recorded before
    FORGED = "forged"  # a VERP address or token in our shape that does not verify
    UNSIGNED = "unsigned"  # no VERP address or token at all, and trust_unsigned is off
    UNMATCHED = "unmatched"  # a failure or complaint about nobody we know
    IGNORED = "ignored"  # not a report, or a report asking for nothing


@dataclass(frozen=True)
class MessageOutcome:
    """One message processed: its classification, the subscriber it hit, and the result."""

    classification: Classification
    result: Result
    subscriber_id: int | None = None
    suppressed: bool = False


def process_message(
    store: Store,
    data: bytes,
    settings: BounceSettings,
    *,
    envelope_recipient: str | None = None,
    origin: str = "message",
    now: datetime | None = None,
) -> MessageOutcome:
    """Classify ``data`` and apply it to ``store`` (committed before this returns).

    ``origin`` names the message in log lines (a file, a mailbox key); ``now`` is the
    clock (default: the store's UTC now).
    """
    found = classify(
        data,
        keys=settings.keys,
        bounce_address=settings.bounce_address,
        envelope_recipient=envelope_recipient,
    )
    if found.kind in (Kind.NOT_A_REPORT, Kind.NO_ACTION):
        log.info("%s: %s, no bounce to record", origin, found.kind)
        return MessageOutcome(found, Result.IGNORED)
    if found.forged:
        log.warning(
            "%s: %s report with a forged VERP address or unsubscribe link, ignored",
            origin,
            found.kind,
        )
        return MessageOutcome(found, Result.FORGED)
    if found.subscriber_id is None and not settings.trust_unsigned:
        log.info(
            "%s: %s report ignored (unsigned: no VERP address or token of ours)",
            origin,
            found.kind,
        )
        return MessageOutcome(found, Result.UNSIGNED)
    subscriber_id = _subscriber_of(store, found)
    if subscriber_id is None:
        log.info("%s: %s report about no known subscriber, ignored", origin, found.kind)
        return MessageOutcome(found, Result.UNMATCHED)
    moment = now or utcnow()
    event = BounceEvent(
        report_key=found.report_key,
        subscriber_id=subscriber_id,
        kind=str(found.kind),
        status=found.status,
        reported_at=min(found.reported_at or moment, moment),
        detail=_detail(found),
        original_key=_original_key(found.original_message_id),
    )
    outcome = record_bounce(
        store,
        event,
        soft_limit=settings.soft_limit,
        soft_window=settings.soft_window,
        now=moment,
    )
    if not outcome.recorded:
        log.info("%s: report already processed", origin)
        return MessageOutcome(found, Result.DUPLICATE, subscriber_id)
    log.info(
        "%s: %s %s for subscriber %d%s",
        origin,
        found.kind,
        found.status or "report",
        subscriber_id,
        ", suppressed" if outcome.suppressed else "",
    )
    return MessageOutcome(found, Result.APPLIED, subscriber_id, outcome.suppressed)


def _subscriber_of(store: Store, found: Classification) -> int | None:
    """The subscriber a report is about: its signed reference, else a known address."""
    if found.subscriber_id is not None:
        return found.subscriber_id if store.get(found.subscriber_id) is not None else None
    for address in found.addresses:
        try:
            subscriber = store.get_by_email(address)
        except AddressError:
            continue
        if subscriber is not None:
            return subscriber.id
    return None


def _detail(found: Classification) -> dict[str, Any]:
    detail = {
        "message_id": found.message_id,
        "original_message_id": found.original_message_id,
        "action": found.action,
        "diagnostic": found.diagnostic[:500],
        "matched_by": found.matched_by or "address",
    }
    return {key: value for key, value in detail.items() if value}


# --- reading files, Maildirs and mboxes --------------------------------------------------------


@dataclass
class BounceRunReport:
    """What ``process_paths`` did: counts per kind and the messages it could not handle.

    ``messages``: every message read; ``hard``/``soft``/``complaints``: reports recorded
    now; ``ignored``: the rest that was handled, split into ``nothing_to_do`` (not a
    report, or one asking for nothing), ``duplicates`` (already processed), ``forged``,
    ``unsigned`` and ``unmatched`` (about nobody we know); ``suppressed``: subscribers
    suppressed by this run. ``requests``: unsubscribe requests read (the mailto: of
    List-Unsubscribe), of which ``unsubscribed_by_link`` left a list through a valid
    token and ``unsubscribed_senders`` (address, where) left every list on the word of
    their From address; the rest are counted in ``ignored`` (``forged`` when a token did
    not verify and the sender is nobody we have). ``unreadable``: (what, why) for each
    file or mailbox entry
    that could not be read; ``unclassified``: (what, why) for each message read that
    failed in an unexpected way (counted in ``messages``, in no other count).
    """

    messages: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    ignored: int = 0
    suppressed: int = 0
    nothing_to_do: int = 0
    duplicates: int = 0
    forged: int = 0
    unsigned: int = 0
    unmatched: int = 0
    requests: int = 0
    unsubscribed_by_link: int = 0
    unsubscribed_senders: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    unclassified: list[tuple[str, str]] = field(default_factory=list)

    @property
    def incomplete(self) -> bool:
        """True when some input could not be read or classified (worth a non-zero exit)."""
        return bool(self.unreadable or self.unclassified)

    def count(self, outcome: MessageOutcome) -> None:
        """Add one processed message."""
        self.messages += 1
        if outcome.result is Result.APPLIED:
            kind = outcome.classification.kind
            if kind is Kind.HARD:
                self.hard += 1
            elif kind is Kind.SOFT:
                self.soft += 1
            else:
                self.complaints += 1
        else:
            self.ignored += 1
            if outcome.result is Result.IGNORED:
                self.nothing_to_do += 1
            elif outcome.result is Result.DUPLICATE:
                self.duplicates += 1
            elif outcome.result is Result.FORGED:
                self.forged += 1
            elif outcome.result is Result.UNSIGNED:
                self.unsigned += 1
            elif outcome.result is Result.UNMATCHED:
                self.unmatched += 1
        self.suppressed += outcome.suppressed

    def count_request(self, outcome: RequestOutcome, origin: str) -> None:
        """Add one unsubscribe request mail, read from ``origin``."""
        self.messages += 1
        self.requests += 1
        if outcome.result is RequestResult.BY_TOKEN:
            self.unsubscribed_by_link += 1
            return
        if outcome.result is RequestResult.BY_SENDER:
            self.unsubscribed_senders.append((outcome.address, origin))
            return
        self.ignored += 1
        if outcome.result is RequestResult.DUPLICATE:
            self.duplicates += 1
        elif outcome.result is RequestResult.UNCHANGED:
            self.nothing_to_do += 1
        elif outcome.forged:
            self.forged += 1
        else:
            self.unmatched += 1

    def count_unclassified(self, origin: str, reason: str) -> None:
        """Add one message that was read but failed while being classified or applied."""
        self.messages += 1
        self.unclassified.append((origin, reason))

    def summary(self) -> str:
        """One line: the counts per kind, why messages were ignored, what failed.

        ``8 messages: hard 2, soft 2, complaints 1, ignored 3 (already processed 2,
        forged 1), suppressed 3``; ``unsubscribed N (by link N, by sender address N)``
        before ``ignored`` when unsubscribe requests were read; ``could not classify N``
        before ``suppressed`` and ``; could not read N`` at the end when there are any.
        """
        noun = "message" if self.messages == 1 else "messages"
        reasons = [
            (label, number)
            for label, number in (
                ("nothing to do", self.nothing_to_do),
                ("already processed", self.duplicates),
                ("forged", self.forged),
                ("unsigned", self.unsigned),
                ("no known subscriber", self.unmatched),
            )
            if number
        ]
        ignored = f"ignored {self.ignored}"
        if reasons:
            ignored += " (" + ", ".join(f"{label} {number}" for label, number in reasons) + ")"
        counts = [f"hard {self.hard}", f"soft {self.soft}", f"complaints {self.complaints}"]
        if self.requests:
            counts.append(self._unsubscribed())
        counts.append(ignored)
        if self.unclassified:
            counts.append(f"could not classify {len(self.unclassified)}")
        counts.append(f"suppressed {self.suppressed}")
        line = f"{self.messages} {noun}: " + ", ".join(counts)
        if self.unreadable:
            line += f"; could not read {len(self.unreadable)}"
        return line

    def _unsubscribed(self) -> str:
        """``unsubscribed 3 (by link 2, by sender address 1)``: requests that acted."""
        by_sender = len(self.unsubscribed_senders)
        ways = [
            f"{label} {number}"
            for label, number in (
                ("by link", self.unsubscribed_by_link),
                ("by sender address", by_sender),
            )
            if number
        ]
        total = f"unsubscribed {self.unsubscribed_by_link + by_sender}"
        return total + (" (" + ", ".join(ways) + ")" if ways else "")


# the database itself is unusable (locked past the busy timeout, connection lost, schema
# missing): every further message would fail the same way, so the run stops there
_STORE_FAILURES = (OperationalError, InterfaceError)


def process_paths(
    workspace: Workspace,
    paths: Sequence[Path],
    *,
    store: Store | None = None,
) -> BounceRunReport:
    """Process every message in ``paths`` (.eml files, Maildir folders, mbox files).

    Every path is checked first: a missing one raises BounceSourceError before any
    message is processed. A file or mailbox entry that cannot be read is listed in
    ``unreadable``, a message that fails in an unexpected way in ``unclassified``
    (logged with its traceback at INFO), and the run goes on. Each message commits
    on its own, so an interrupted run keeps what it did and a rerun skips what it
    already recorded.
    """
    missing = [path for path in paths if not path.exists()]
    if missing:
        raise BounceSourceError(
            f"{missing[0]}: no such file or folder",
            hint="give .eml files, Maildir folders (with new/ or cur/) or mbox files",
        )
    settings = BounceSettings.from_workspace(workspace)
    requests = RequestSettings.from_workspace(workspace)
    report = BounceRunReport()
    owned = store is None
    active = open_store_for(workspace) if store is None else store
    try:
        for origin, data in _read_messages(paths, report.unreadable):
            try:
                outcome = process_message(active, data, settings, origin=origin)
                found = outcome.classification
                # not a report: maybe someone asking to leave through the mailto: link
                request = (
                    process_request(active, data, requests, key=found.report_key, origin=origin)
                    if found.kind is Kind.NOT_A_REPORT
                    else None
                )
            except _STORE_FAILURES:
                raise
            except Exception as exc:
                # a message we cannot make sense of must not stop this run, nor every
                # rerun (it stays in the mailbox): list it, say why, go on
                reason = _one_line(exc)
                log.info("%s: could not classify: %s", origin, reason, exc_info=True)
                report.count_unclassified(origin, reason)
                continue
            if request is not None:
                report.count_request(request, origin)
            else:
                report.count(outcome)
    finally:
        if owned:
            active.close()
    return report


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line, at most 200 characters."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= 200 else line[:199] + "…"


def _read_messages(
    paths: Sequence[Path], unreadable: list[tuple[str, str]]
) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every message under ``paths``; failures go to ``unreadable``."""
    for path in paths:
        if path.is_dir():
            if not ((path / "new").is_dir() or (path / "cur").is_dir()):
                unreadable.append((str(path), "a folder but not a Maildir (no new/ or cur/)"))
                continue
            yield from _maildir_messages(path, unreadable)
            continue
        try:
            with path.open("rb") as handle:
                head = handle.read(5)
        except OSError as exc:
            unreadable.append((str(path), _why(exc)))
            continue
        if head == b"From ":  # the mbox separator line, which no message starts with
            mbox = mailbox.mbox(path, factory=None, create=False)
            yield from _mbox_messages(mbox, path, unreadable)
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            unreadable.append((str(path), _why(exc)))
            continue
        if not data.strip():
            unreadable.append((str(path), "empty file"))
            continue
        yield str(path), data


def _maildir_messages(path: Path, unreadable: list[tuple[str, str]]) -> Iterator[tuple[str, bytes]]:
    """Every message file in ``path``/new and ``path``/cur (whichever exist), read-only.

    Read by hand rather than with ``mailbox.Maildir``, which fails on a folder missing
    new/ or cur/ (mail delivery creates new/ first; some tools keep only cur/), and
    which would move nothing here anyway. Names starting with a dot are not messages.
    """
    for subdir in ("new", "cur"):
        folder = path / subdir
        if not folder.is_dir():
            continue
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(folder)
                if not entry.name.startswith(".") and entry.is_file()
            )
        except OSError as exc:
            unreadable.append((str(folder), _why(exc)))
            continue
        for name in names:
            file = folder / name
            try:
                data = file.read_bytes()
            except OSError as exc:
                unreadable.append((str(file), _why(exc)))
                continue
            yield str(file), data


def _mbox_messages(
    box: mailbox.mbox, path: Path, unreadable: list[tuple[str, str]]
) -> Iterator[tuple[str, bytes]]:
    """Every message of the mbox file at ``path`` as (name, bytes), in order, read-only."""
    try:
        keys = sorted(box.keys())
    except OSError as exc:
        unreadable.append((str(path), _why(exc)))
        return
    for number, key in enumerate(keys, 1):
        name = f"{path} [message {number}]"
        try:
            data = box.get_bytes(key)
        except (OSError, KeyError) as exc:
            unreadable.append((name, getattr(exc, "strerror", None) or str(exc)))
            continue
        yield name, data


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


__all__ = [
    "BounceRunReport",
    "BounceSettings",
    "BounceSourceError",
    "Classification",
    "Kind",
    "MessageOutcome",
    "Result",
    "classify",
    "process_message",
    "process_paths",
]
