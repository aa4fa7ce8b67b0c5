"""Whether a double opt-in confirmation mail may go to an address now.

The public sign-up form lets anyone type anyone's address, so the mails it causes are
limited per address, not per client: at most one per ``every`` for one address,
whichever IP, process or list asked. Each mail sent is remembered as a
``confirmation_mail`` record in the consent trail (it is part of the double opt-in
story), and the check and the record share one write transaction, so two web
processes racing for the same address send one mail between them. An address that
bounced, complained or was erased never gets one.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from newsletter.store.addresses import address_hash
from newsletter.store.ops import consent_row, record_consents
from newsletter.store.records import Consent, utcnow
from newsletter.store.schema import (
    BOUNCED,
    COMPLAINED,
    ERASED,
    consents,
    subscribers,
    suppressions,
)
from newsletter.store.subscribers import Store

CONFIRMATION_MAIL = "confirmation_mail"
# decisions of claim_confirmation_mail
SEND = "send"
RECENT = "recent"
SUPPRESSED = "suppressed"
GONE = "gone"
# a sign-up never mails these, even after a fresh request (unsubscribing is not here: a
# person who left may ask to come back)
BLOCKING = (BOUNCED, COMPLAINED, ERASED)


def claim_confirmation_mail(
    store: Store, subscriber_id: int, list_id: int, *, every: timedelta, consent: Consent
) -> str:
    """Decide and record, in one transaction, whether to mail ``subscriber_id`` a confirm link.

    -> ``SEND`` (recorded now: the caller sends it), ``RECENT`` (one went out to this
    address within ``every``), ``SUPPRESSED`` (bounced, complained or erased) or ``GONE``
    (no such subscriber any more).
    """
    now = utcnow()
    with store.write() as conn:
        row = conn.execute(
            select(subscribers.c.email, subscribers.c.status)
            .where(subscribers.c.id == subscriber_id)
            .with_for_update()
        ).first()
        if row is None or row.email is None:
            return GONE
        reason = conn.scalar(
            select(suppressions.c.reason).where(
                suppressions.c.email_hash == address_hash(row.email)
            )
        )
        if row.status in BLOCKING or reason in BLOCKING:
            return SUPPRESSED
        last = conn.scalar(
            select(consents.c.at)
            .where(
                consents.c.subscriber_id == subscriber_id,
                consents.c.action == CONFIRMATION_MAIL,
            )
            .order_by(consents.c.at.desc())
            .limit(1)
        )
        if last is not None and last > now - every:
            return RECENT
        record_consents(
            conn, [consent_row(subscriber_id, list_id, CONFIRMATION_MAIL, consent, now)]
        )
        return SEND
