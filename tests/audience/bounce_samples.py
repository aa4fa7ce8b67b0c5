"""The sample bounce and complaint reports of the bounce tests, and helpers to look at a store.

The fixtures under fixtures/bounces/ are addressed to the VERP addresses and carry the
unsubscribe tokens that the test key ("test-key-not-secret") gives the sample subscribers
in import order (1 Ada, 2 Grace, 3 Linus, 4 Inés, 5 Kofi); ``test_fixture_references_*``
checks that, so a change of the VERP or token format shows up there first. Two are
unsigned on purpose (hard-no-verp.eml, unsigned-arf.eml: anyone could have written them),
and delayed-again.eml is a second delay warning about the message delayed.eml is about.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from newsletter.audience.bounces.classify import Classification, classify
from newsletter.store import Store
from newsletter.store.bounce_reports import bounce_reports
from newsletter.store.schema import consents

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"
KEY = "test-key-not-secret"
BASE = "bounces@example.org"
ADA, GRACE, LINUS, INES, KOFI = (
    "ada.lovelace@example.com",
    "grace.hopper@example.net",
    "linus.t@example.org",
    "ines.gomez@example.com",
    "kofi.mensah@example.net",
)
IDS = {ADA: 1, GRACE: 2, LINUS: 3, INES: 4, KOFI: 5}


def fixture(name: str) -> bytes:
    """The bytes of fixtures/bounces/``name``."""
    return (FIXTURES / name).read_bytes()


def classify_fixture(name: str, *, keys: tuple[str, ...] = (KEY,)) -> Classification:
    """The classification of fixture ``name`` under ``keys``."""
    return classify(fixture(name), keys=keys, bounce_address=BASE)


def status_of(store: Store, address: str) -> str:
    """The global status of the subscriber at ``address``."""
    subscriber = store.get_by_email(address)
    assert subscriber is not None
    return subscriber.status


def sendable(store: Store) -> set[str]:
    """The addresses a send to the list main would go to."""
    return {recipient.email for recipient in store.iter_recipients("main")}


def consent_actions(store: Store, subscriber_id: int) -> list[tuple[str, dict[str, object]]]:
    """(action, detail) of the subscriber's consent records after the import, oldest first."""
    with store.read() as conn:
        rows = conn.execute(
            select(consents.c.action, consents.c.detail)
            .where(consents.c.subscriber_id == subscriber_id, consents.c.action != "import")
            .order_by(consents.c.id)
        ).all()
    return [(row.action, row.detail or {}) for row in rows]


def report_rows(store: Store) -> int:
    """How many bounce reports are recorded."""
    with store.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(bounce_reports)) or 0)


def soft_report(number: int, when: datetime, *, original: int | None = None) -> bytes:
    """The soft-bounce fixture as a distinct report (own Message-ID) dated ``when``.

    It is about a message of its own too (original Message-ID numbered ``number``),
    unless ``original`` names the one it shares with other reports.
    """
    data = fixture("soft-4.2.2.eml")
    data = data.replace(
        b"<dsn.20261201082011.55821@relay.fjord.example.org>",
        f"<dsn.soft{number}@relay.fjord.example.org>".encode(),
    )
    data = data.replace(
        b"<2026-12-01-harbour.8@example.org>",
        f"<issue-{number if original is None else original}.8@example.org>".encode(),
    )
    date = when.strftime("%a, %d %b %Y %H:%M:%S +0000").encode()
    return data.replace(b"Date: Tue, 01 Dec 2026 08:20:11 +0000", b"Date: " + date)


BROKEN_LINK = b"<http://[::1/u/abc>"  # urlsplit: ValueError("Invalid IPv6 URL")


def complaint_with_broken_link() -> bytes:
    """The complaint fixture with an unparseable link next to the genuine one."""
    return fixture("complaint-arf.eml").replace(
        b"List-Unsubscribe: <https://", b"List-Unsubscribe: " + BROKEN_LINK + b", <https://"
    )
