"""Bounces and complaints by mail, classified: the hand-written fixtures (see
bounce_samples), forged and mangled reports, and the memory a large report costs.

Sender rules covered: 24 (the VERP address decodes back, a forged one does not), 25.
"""

from __future__ import annotations

import mailbox
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bounce_samples import (
    ADA,
    BASE,
    BROKEN_LINK,
    FIXTURES,
    GRACE,
    IDS,
    INES,
    KEY,
    KOFI,
    LINUS,
    classify_fixture,
    complaint_with_broken_link,
    fixture,
    status_of,
)

from newsletter.audience.bounces.classify import Kind, classify
from newsletter.audience.bounces.run import process_paths
from newsletter.mail.tokens import UnsubscribeTokens
from newsletter.mail.verp import verp_address
from newsletter.store import Store, open_store_for
from newsletter.workspace import Workspace

# --- the fixtures and classification -----------------------------------------------------------


def test_fixture_references_are_the_test_keys_verp_addresses_and_tokens(store: Store) -> None:
    for address, subscriber_id in IDS.items():
        assert store.get_by_email(address).id == subscriber_id  # type: ignore[union-attr]
    hard = fixture("hard-5.1.1.eml").decode()
    assert verp_address(BASE, IDS[GRACE], (KEY,)) in hard
    complaint = fixture("complaint-arf.eml").decode()
    assert UnsubscribeTokens((KEY,)).make(IDS[ADA], 1, 1) in complaint


@pytest.mark.parametrize(
    ("name", "kind", "subscriber_id", "matched_by", "status", "action"),
    [
        ("hard-5.1.1.eml", Kind.HARD, IDS[GRACE], "verp", "5.1.1", "failed"),
        ("soft-4.2.2.eml", Kind.SOFT, IDS[LINUS], "verp", "4.2.2", "failed"),
        ("delayed.eml", Kind.SOFT, IDS[INES], "verp", "4.4.1", "delayed"),
        ("delayed-again.eml", Kind.SOFT, IDS[INES], "verp", "4.4.1", "delayed"),
        ("delivered.eml", Kind.NO_ACTION, IDS[KOFI], "verp", "2.0.0", "delivered"),
        ("complaint-arf.eml", Kind.COMPLAINT, IDS[ADA], "token", "abuse", "complaint"),
        ("hard-no-verp.eml", Kind.HARD, None, "", "5.2.1", "failed"),
        ("unsigned-arf.eml", Kind.COMPLAINT, None, "", "abuse", "complaint"),
        ("auto-reply.eml", Kind.NOT_A_REPORT, None, "", "", ""),
    ],
)
def test_fixtures_are_classified(
    name: str, kind: Kind, subscriber_id: int | None, matched_by: str, status: str, action: str
) -> None:
    found = classify_fixture(name)
    assert (
        found.kind,
        found.subscriber_id,
        found.matched_by,
        found.status,
        found.action,
        found.forged,
    ) == (kind, subscriber_id, matched_by, status, action, False)
    assert len(found.report_key) == 64


def test_the_original_message_id_comes_from_the_attached_message_or_headers() -> None:
    # text/rfc822-headers (a DSN) and message/rfc822 (a complaint)
    assert classify_fixture("delayed.eml").original_message_id == (
        "<2026-12-01-harbour.9@example.org>"
    )
    assert classify_fixture("delayed-again.eml").original_message_id == (
        "<2026-12-01-harbour.9@example.org>"
    )
    assert classify_fixture("complaint-arf.eml").original_message_id == (
        "<2026-12-01-harbour.6@example.org>"
    )
    # nothing attached: no original to name
    assert classify_fixture("hard-no-verp.eml").original_message_id == ""


def test_addresses_in_the_report_are_kept_for_the_fallback_lookup() -> None:
    found = classify(fixture("hard-no-verp.eml"), keys=(KEY,), bounce_address=BASE)
    # Final-Recipient in brackets and Original-Recipient in another case, both read
    assert found.addresses == ("kofi.mensah@example.net", "Kofi.Mensah@example.net")
    assert found.reported_at == datetime(2026, 12, 2, 10, 41, 19, tzinfo=UTC)
    assert "Mailbox disabled" in found.diagnostic


def test_a_forged_verp_address_is_flagged_not_matched() -> None:
    found = classify(fixture("forged-verp.eml"), keys=(KEY,), bounce_address=BASE)
    assert found.kind is Kind.HARD and found.forged and found.subscriber_id is None
    # the genuine fixtures are forgeries to anyone holding another key
    other = classify(fixture("hard-5.1.1.eml"), keys=("another",), bounce_address=BASE)
    assert other.forged and other.subscriber_id is None


def test_mangled_reports_are_read_without_errors() -> None:
    # a non-ASCII MAC in a VERP-shaped address: forged, not a crash
    data = fixture("hard-5.1.1.eml").replace(b"4e5acdf31d18", "4e5acdf31d1ß".encode())
    assert classify(data, keys=(KEY,), bounce_address=BASE).forged
    whole = fixture("complaint-arf.eml")
    for cut in range(0, len(whole), 97):  # every truncation point reads as something
        assert classify(whole[:cut], keys=(KEY,), bounce_address=BASE).kind in set(Kind)


def test_an_unparseable_unsubscribe_link_is_not_ours_and_not_a_crash() -> None:
    found = classify(complaint_with_broken_link(), keys=(KEY,), bounce_address=BASE)
    # the broken link is skipped; the genuine token and VERP address still name Ada
    assert (found.kind, found.subscriber_id, found.forged) == (Kind.COMPLAINT, IDS[ADA], False)
    headers_only = (
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n"
        b"--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n\n"
        b"--b\nContent-Type: text/rfc822-headers\n\n"
        b"List-Unsubscribe: <https://x/u/>, " + BROKEN_LINK + b"\n--b--\n"
    )
    found = classify(headers_only, keys=(KEY,), bounce_address=BASE)
    assert (found.kind, found.subscriber_id) == (Kind.COMPLAINT, None)


def test_a_tampered_unsubscribe_token_in_a_complaint_is_forged() -> None:
    # the report also carries Ada's valid VERP address: one bad reference spoils it all
    data = fixture("complaint-arf.eml").replace(b"WzEsMSwxXQ.", b"WzIsMSwxXQ.")  # id 1 -> 2
    found = classify(data, keys=(KEY,), bounce_address=BASE)
    assert found.kind is Kind.COMPLAINT and found.forged and found.subscriber_id is None
    # a valid token of someone else (Grace) next to Ada's VERP address: they disagree
    genuine = UnsubscribeTokens((KEY,)).make(IDS[GRACE], 1, 1)
    swapped = fixture("complaint-arf.eml").replace(
        b"WzEsMSwxXQ.-y4O482QcOtKPnAkh5ceNk1GLPM", genuine.encode()
    )
    found = classify(swapped, keys=(KEY,), bounce_address=BASE)
    assert found.forged and found.subscriber_id is None


def test_feedback_types_that_are_not_complaints_ask_for_nothing() -> None:
    for feedback_type in (b"not-spam", b"auth-failure"):
        data = fixture("complaint-arf.eml").replace(
            b"Feedback-Type: abuse", b"Feedback-Type: " + feedback_type
        )
        found = classify(data, keys=(KEY,), bounce_address=BASE)
        assert found.kind is Kind.NO_ACTION, feedback_type


def test_a_report_on_several_recipients_counts_as_its_worst() -> None:
    delivered_block = (
        b"Final-Recipient: rfc822; someone.else@example.net\nAction: delivered\nStatus: 2.0.0\n\n"
    )
    data = fixture("hard-5.1.1.eml").replace(
        b"Final-Recipient: rfc822; grace", delivered_block + b"Final-Recipient: rfc822; grace"
    )
    assert classify(data, keys=(KEY,), bounce_address=BASE).kind is Kind.HARD
    soft_only = data.replace(b"Action: failed\nStatus: 5.1.1", b"Action: delayed\nStatus: 4.4.7")
    assert classify(soft_only, keys=(KEY,), bounce_address=BASE).kind is Kind.SOFT


def test_status_falls_back_to_the_diagnostic_code() -> None:
    data = fixture("hard-5.1.1.eml").replace(b"Status: 5.1.1\n", b"")
    found = classify(data, keys=(KEY,), bounce_address=BASE)
    assert (found.kind, found.status) == (Kind.HARD, "5.1.1")
    bare = data.replace(b"550 5.1.1 <grace", b"450 <grace")
    found = classify(bare, keys=(KEY,), bounce_address=BASE)
    assert (found.kind, found.status) == (Kind.SOFT, "4.0.0")


def test_line_endings_change_neither_the_classification_nor_the_report_key() -> None:
    data = fixture("soft-4.2.2.eml")
    crlf = data.replace(b"\n", b"\r\n")
    one, two = (classify(d, keys=(KEY,), bounce_address=BASE) for d in (data, crlf))
    assert one == two
    no_id = data.replace(b"Message-ID: <dsn.20261201082011.55821@relay.fjord.example.org>\n", b"")
    three, four = (
        classify(d, keys=(KEY,), bounce_address=BASE)
        for d in (no_id, no_id.replace(b"\n", b"\r\n"))
    )
    assert three.report_key == four.report_key != one.report_key


def test_the_envelope_recipient_names_the_subscriber_when_headers_do_not() -> None:
    data = fixture("hard-5.1.1.eml").replace(
        b"bounces+2-4e5acdf31d18@example.org", b"postmaster@example.org"
    )
    assert classify(data, keys=(KEY,), bounce_address=BASE).matched_by == "token"
    no_token = data.replace(b"List-Unsubscribe:", b"X-Dropped:")
    plain = classify(no_token, keys=(KEY,), bounce_address=BASE)
    assert plain.subscriber_id is None and not plain.forged
    verp = verp_address(BASE, IDS[GRACE], (KEY,))
    enveloped = classify(no_token, keys=(KEY,), bounce_address=BASE, envelope_recipient=verp)
    assert (enveloped.subscriber_id, enveloped.matched_by) == (IDS[GRACE], "verp")


# --- memory -----------------------------------------------------------------------------------


def big_bounce(size: int) -> bytes:
    """hard-5.1.1.eml with the whole original returned too: a body of about ``size`` bytes."""
    data = fixture("hard-5.1.1.eml").replace(b"\r\n", b"\n")
    boundary = b"--7F3A12C0441.1764576902/mx1.harbour-mail.example.net--"
    line = b"The winter timetable starts on Monday with two fewer crossings a day.\n"
    original = (
        b"Content-Type: message/rfc822\n\n"
        b"Message-ID: <big-original@example.org>\nSubject: Harbour notes\n"
        b"Content-Type: text/plain; charset=us-ascii\n\n" + line * (size // len(line)) + b"\n"
    )
    head, _, tail = data.rpartition(boundary)
    return head + boundary[:-2] + b"\n" + original + boundary + tail


@pytest.mark.parametrize("form", ["eml", "mbox"])
def test_a_large_report_costs_at_most_three_times_its_size_in_memory(
    ws: Workspace, tmp_path: Path, form: str
) -> None:
    """A 5 MB bounce with the original attached: read, parsed and applied in at most about
    three times its size (the whole text, its lines and their join used to cost ten)."""
    data = big_bounce(5_000_000)
    path = tmp_path / f"big.{form}"
    if form == "eml":
        path.write_bytes(data)
    else:
        box = mailbox.mbox(path)
        box.add(data)
        box.close()
    with open_store_for(ws) as store:
        process_paths(ws, [FIXTURES / "delivered.eml"], store=store)  # imports, caches
        tracemalloc.start()
        try:
            report = process_paths(ws, [path], store=store)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert status_of(store, GRACE) == "bounced"
    assert report.hard == 1 and not report.incomplete
    assert peak <= 3 * len(data), f"peak {peak / len(data):.1f} times the message"
