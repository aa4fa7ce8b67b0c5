"""Applying one classified report to the store: ``process_message(store, data, settings)``.

``process_message`` records a matched report once (``store.bounce_reports``: the key
is a hash of the report's Message-ID) and applies it: a hard bounce or a complaint
suppresses the subscriber everywhere at once; soft bounces suppress once
``bounces.soft_limit`` different messages soft-bounced within
``bounces.soft_window_days`` (the Message-ID of the attached original tells the
messages apart, so repeated delay warnings about one message count once).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from newsletter.audience.bounces.classify import Classification, Kind, classify
from newsletter.audience.bounces.parse import delivery_id_of, original_key
from newsletter.errors import AddressError
from newsletter.mail.settings import MessageSettings
from newsletter.store import Store, utcnow
from newsletter.store.bounce_reports import BounceEvent, record_bounce
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)


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
    refused = _refusal(found, settings, origin)
    if refused is not None:
        return MessageOutcome(found, refused)
    subscriber_id = _subscriber_of(store, found)
    if subscriber_id is None:
        log.info("%s: %s report about no known subscriber, ignored", origin, found.kind)
        return MessageOutcome(found, Result.UNMATCHED)
    return _record(store, found, subscriber_id, settings, origin=origin, now=now or utcnow())


def _refusal(found: Classification, settings: BounceSettings, origin: str) -> Result | None:
    """Why a report asks for nothing or cannot be trusted (logged), or None to apply it."""
    if found.kind in (Kind.NOT_A_REPORT, Kind.NO_ACTION):
        log.info("%s: %s, no bounce to record", origin, found.kind)
        return Result.IGNORED
    if found.forged:
        log.warning(
            "%s: %s report with a forged VERP address or unsubscribe link, ignored",
            origin,
            found.kind,
        )
        return Result.FORGED
    if found.subscriber_id is None and not settings.trust_unsigned:
        log.info(
            "%s: %s report ignored (unsigned: no VERP address or token of ours)",
            origin,
            found.kind,
        )
        return Result.UNSIGNED
    return None


def _record(
    store: Store,
    found: Classification,
    subscriber_id: int,
    settings: BounceSettings,
    *,
    origin: str,
    now: datetime,
) -> MessageOutcome:
    """Record the report about ``subscriber_id`` once and suppress as the limits say."""
    event = BounceEvent(
        report_key=found.report_key,
        subscriber_id=subscriber_id,
        kind=str(found.kind),
        status=found.status,
        reported_at=min(found.reported_at or now, now),
        detail=_detail(found),
        original_key=original_key(found.original_message_id),
        campaign_id=found.campaign_id,
        delivery_id=delivery_id_of(found.original_message_id),
    )
    outcome = record_bounce(
        store,
        event,
        soft_limit=settings.soft_limit,
        soft_window=settings.soft_window,
        now=now,
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
