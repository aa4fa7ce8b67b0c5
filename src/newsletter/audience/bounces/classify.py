"""What a mail that came back is: ``classify(data, ...) -> Classification``.

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

Who a report is about comes from ``references``; ``classify`` touches no database.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import Message
from typing import Any

from newsletter.audience.bounces.parse import (
    attached_headers,
    date_of,
    first_header,
    header_blocks,
    header_values,
    mail_addresses,
    message_id_of,
    parse_message,
    part_of_type,
    report_key,
    subparts,
)
from newsletter.audience.bounces.references import (
    recipients,
    token_campaign,
    token_references,
    verp_references,
)
from newsletter.store.bounce_reports import COMPLAINT, HARD, SOFT


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
    ``campaign_id``: the campaign the original's signed unsubscribe token names, or None.
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
    campaign_id: int | None = None


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
    message = parse_message(data)
    message_id = first_header(message, "Message-ID").strip()
    base = Classification(
        kind=Kind.NOT_A_REPORT,
        report_key=report_key(message_id, data),
        message_id=message_id,
        reported_at=date_of(message),
    )
    if message.get_content_type() != "multipart/report":
        return base
    report_type = str(message.get_param("report-type", "") or "").strip().lower()
    report = _Report(
        message, list(subparts(message)), base, tuple(keys), bounce_address, envelope_recipient
    )
    if report_type == "delivery-status":
        return _classify_dsn(report)
    if report_type == "feedback-report":
        return _classify_arf(report)
    return base


@dataclass(frozen=True)
class _Report:
    """A ``multipart/report`` being read: the message and its parts, what is known of it
    so far (``base``), and what its signed references are checked against."""

    message: Message
    parts: list[Message]
    base: Classification
    keys: tuple[str, ...]
    bounce_address: str
    envelope_recipient: str | None

    def verp(self, addresses: Iterable[str]) -> list[tuple[str, int | None]]:
        """The references of ``addresses`` in the shape of our VERP addresses."""
        return verp_references(addresses, self.keys, self.bounce_address)

    def delivered_to(self) -> list[tuple[str, int | None]]:
        """The VERP references of where the report itself was delivered."""
        return self.verp(recipients(self.message, self.envelope_recipient))

    def tokens(self, original: Message | None) -> list[tuple[str, int | None]]:
        """The references of our unsubscribe links in the attached original's headers."""
        return token_references(original, self.keys)


def _classify_dsn(report: _Report) -> Classification:
    """RFC 3464: the most severe per-recipient block decides."""
    base = report.base
    status_part = part_of_type(report.parts, "message/delivery-status")
    if status_part is None:
        return base
    blocks = [block for block in header_blocks(status_part) if first_header(block, "Action")]
    if not blocks:
        return base
    kind, block = max(
        ((_recipient_kind(block), block) for block in blocks), key=lambda kb: _SEVERITY[kb[0]]
    )
    original = attached_headers(report.parts)
    references = [*report.delivered_to(), *report.tokens(original)]
    addresses = [
        *_typed_addresses(first_header(block, "Final-Recipient")),
        *_typed_addresses(first_header(block, "Original-Recipient")),
    ]
    return _with_subscriber(
        base,
        references,
        kind=kind,
        addresses=tuple(dict.fromkeys(addresses)),
        status=_status_of(block),
        action=_action_of(block),
        diagnostic=" ".join(first_header(block, "Diagnostic-Code").split()),
        original_message_id=message_id_of(original),
        campaign_id=token_campaign(original, report.keys),
    )


def _classify_arf(report: _Report) -> Classification:
    """RFC 5965: a feedback report about our attached message."""
    base = report.base
    report_part = part_of_type(report.parts, "message/feedback-report")
    if report_part is None:
        return base
    fields = next(iter(header_blocks(report_part)), None)
    if fields is None:
        return base
    feedback_type = first_header(fields, "Feedback-Type").strip().lower()
    kind = Kind.COMPLAINT if feedback_type in _COMPLAINT_TYPES else Kind.NO_ACTION
    original = attached_headers(report.parts)
    senders = [*header_values(fields, "Original-Mail-From")]
    if original is not None:
        senders += header_values(original, "Return-Path")
    references = [
        *report.tokens(original),
        *report.verp(mail_addresses(senders)),
        *report.delivered_to(),
    ]
    addresses = mail_addresses(header_values(fields, "Original-Rcpt-To"))
    if original is not None:
        addresses += mail_addresses(header_values(original, "To"))
    return _with_subscriber(
        base,
        references,
        kind=kind,
        addresses=tuple(dict.fromkeys(addresses)),
        status=feedback_type,
        action="complaint" if kind is Kind.COMPLAINT else feedback_type,
        original_message_id=message_id_of(original),
        campaign_id=token_campaign(original, report.keys),
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
    words = first_header(block, "Action").split()
    return words[0].lower() if words else ""


def _status_of(block: Message) -> str:
    """The block's status code; else the one its SMTP Diagnostic-Code starts with; else ""."""
    found = _STATUS.match(first_header(block, "Status"))
    if found:
        return ".".join(found.groups())
    diagnostic_type, _, text = first_header(block, "Diagnostic-Code").partition(";")
    reply = _SMTP_REPLY.match(text) if diagnostic_type.strip().lower() == "smtp" else None
    if reply is None:
        return ""
    return reply.group(2) or f"{reply.group(1)}.0.0"


def _typed_addresses(value: str) -> list[str]:
    """``rfc822; someone@example.org`` (RFC 3464 address-type; address) -> [address]."""
    address_type, semicolon, address = value.partition(";")
    if not semicolon or address_type.strip().lower() != "rfc822":
        return []
    return mail_addresses([address])
