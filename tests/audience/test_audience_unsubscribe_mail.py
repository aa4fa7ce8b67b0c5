"""Unsubscribe requests by mail: the List-Unsubscribe mailto: of a sent message, answered the
way a mail client answers it, and the hand-written requests under fixtures/unsubscribe/,
processed by ``newsletter bounces`` from .eml files, Maildirs and mboxes into a real SQLite
file.

The fixtures use the sample subscribers and the test key ("test-key-not-secret") as the
bounce fixtures do: 1 Ada, 2 Grace, 3 Linus, 4 Inés, 5 Kofi, list main is 1.
mailto-token.eml carries Grace's token (list 1, campaign 1); forged-token.eml, sent by
Inés, carries Ada's token with its signature changed; from-address.eml (Linus, to the
unsubscribe mailbox) and reply-unsubscribe.eml (Kofi, subject "Re: UNSUBSCRIBE" to the
editors) carry none; stranger.eml comes from nobody on the list; out-of-office.eml is an
auto-reply, not a request.
"""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from newsletter.audience.bounces.run import process_paths
from newsletter.audience.bounces.unsubscribe import (
    RequestResult,
    RequestSettings,
    UnsubscribeRequest,
    process_request,
    read_request,
)
from newsletter.cli import cli
from newsletter.mail.tokens import UnsubscribeTokens
from newsletter.store import Consent, Store, address_hash
from newsletter.store.schema import consents, suppressions
from newsletter.workspace import Workspace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "unsubscribe"
KEY = "test-key-not-secret"
MAILBOX = "unsubscribe@example.org"
ADA, GRACE, LINUS, INES, KOFI = (
    "ada.lovelace@example.com",
    "grace.hopper@example.net",
    "linus.t@example.org",
    "ines.gomez@example.com",
    "kofi.mensah@example.net",
)
IDS = {ADA: 1, GRACE: 2, LINUS: 3, INES: 4, KOFI: 5}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def status_of(store: Store, address: str) -> tuple[str, str]:
    """(global status, status on list main) of ``address``."""
    subscriber = store.get_by_email(address)
    assert subscriber is not None
    on_main = [m.status for m in subscriber.memberships if m.list_name == "main"]
    return subscriber.status, on_main[0]


def sendable(store: Store) -> set[str]:
    return {recipient.email for recipient in store.iter_recipients("main")}


def unsubscribes(store: Store, address: str) -> list[tuple[str, int | None, dict[str, object]]]:
    """(source, list id, detail) of every unsubscribe record in ``address``'s consent trail."""
    subscriber = store.get_by_email(address)
    assert subscriber is not None
    with store.read() as conn:
        rows = conn.execute(
            select(consents.c.source, consents.c.list_id, consents.c.detail)
            .where(consents.c.subscriber_id == subscriber.id, consents.c.action == "unsubscribe")
            .order_by(consents.c.id)
        ).all()
    return [(row.source, row.list_id, dict(row.detail or {})) for row in rows]


def suppressed(store: Store, address: str) -> bool:
    with store.read() as conn:
        found = conn.scalar(
            select(suppressions.c.email_hash).where(
                suppressions.c.email_hash == address_hash(address)
            )
        )
    return found is not None


def maildir_with(folder: Path, *messages: bytes) -> Path:
    box = mailbox.Maildir(folder, create=True)
    for data in messages:
        box.add(data)
    box.close()
    return folder


def mbox_with(file: Path, *messages: bytes) -> Path:
    box = mailbox.mbox(file, create=True)
    for data in messages:
        box.add(data)
    box.close()
    return file


# --- which mail is a request ------------------------------------------------------------------

GRACE_TOKEN = UnsubscribeTokens((KEY,)).make(IDS[GRACE], 1, 1)


def headers(subject: str, *, to: str = "editors@example.org", extra: str = "") -> bytes:
    return (
        f"From: Grace <{GRACE}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <m1@example.net>\r\n{extra}\r\nbody\r\n"
    ).encode()


@pytest.mark.parametrize(
    "subject",
    [
        f"unsubscribe {GRACE_TOKEN}",
        f"Re: Unsubscribe {GRACE_TOKEN}",
        f"FWD: re: unsubscribe <{GRACE_TOKEN}>.",
        f"AW: unsubscribe%20{GRACE_TOKEN}",  # a client that left the mailto's %20 as it was
        "=?utf-8?q?unsubscribe_" + GRACE_TOKEN.replace("-", "=2D") + "?=",
    ],
)
def test_the_token_is_read_from_the_subjects_clients_write(subject: str) -> None:
    request = read_request(headers(subject), mailbox=MAILBOX)
    assert request == UnsubscribeRequest((GRACE_TOKEN,), GRACE, "<m1@example.net>")


@pytest.mark.parametrize(
    "subject", ["unsubscribed", "How do I unsubscribe?", "Re: The Weekly Brief", "unsubscribe-me"]
)
def test_other_subjects_are_no_request_unless_sent_to_the_unsubscribe_mailbox(
    subject: str,
) -> None:
    assert read_request(headers(subject), mailbox=MAILBOX) is None
    assert read_request(headers(subject), mailbox="") is None
    for to in (MAILBOX, "Unsubscribe+brief@Example.org"):
        request = read_request(headers(subject, to=to), mailbox=MAILBOX)
        assert request == UnsubscribeRequest((), GRACE, "<m1@example.net>")
    arrived = read_request(headers(subject), mailbox=MAILBOX, envelope_recipient=MAILBOX)
    assert arrived is not None


def test_an_auto_reply_is_never_a_request_and_other_automatic_mail_may_be() -> None:
    replied = headers("unsubscribe", to=MAILBOX, extra="Auto-Submitted: auto-replied\r\n")
    assert read_request(replied, mailbox=MAILBOX) is None
    generated = headers("unsubscribe", extra="Auto-Submitted: auto-generated\r\n")
    assert read_request(generated, mailbox=MAILBOX) is not None


def test_words_that_are_not_token_shaped_are_not_tried(ws: Workspace, store: Store) -> None:
    long = "A" * 300 + "." + "b" * 30
    request = read_request(headers(f"unsubscribe me {long} now"), mailbox=MAILBOX)
    assert request is not None and request.tokens == ()


def test_the_token_and_subject_never_reach_the_log(
    ws: Workspace, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    settings = RequestSettings.from_workspace(ws)
    with caplog.at_level("DEBUG"):
        outcome = process_request(store, fixture("mailto-token.eml"), settings, key="a" * 64)
    assert outcome is not None and outcome.result is RequestResult.BY_TOKEN
    assert "unsubscribed from main" in caplog.text
    assert GRACE_TOKEN not in caplog.text and GRACE_TOKEN.split(".")[1] not in caplog.text


def test_a_token_of_a_membership_that_is_gone_falls_back_to_the_sender(
    ws: Workspace, store: Store
) -> None:
    # Grace's token names list 1; a token for a list she was never on names nobody
    other = store.ensure_list("events")
    token = UnsubscribeTokens((KEY,)).make(IDS[GRACE], other, 1)
    data = request_mail(f"Kofi <{KOFI}>", MAILBOX, f"unsubscribe {token}")
    outcome = process_request(store, data, RequestSettings.from_workspace(ws), key="b" * 64)
    assert outcome is not None
    assert (outcome.result, outcome.address, outcome.forged) == (
        RequestResult.BY_SENDER,
        KOFI,
        True,
    )
    assert status_of(store, GRACE) == ("active", "active")


# --- a sent message, its mailto:, and the mail a client writes from it -------------------------


def sent_messages(ws: Workspace) -> dict[str, bytes]:
    """Send an issue to the list over a real SMTP server on loopback -> {rcpt: bytes}."""
    from ledger_server import FAST, LedgerHandler, LedgerServer, write_issue
    from newsletter.deliver import send_issue

    server = LedgerServer(LedgerHandler())
    server.start()
    try:
        send_issue(ws, write_issue(ws.root), smtp_url=server.url, tuning=FAST)
        return {rcpt: data for _, rcpt, data in server.handler.received}
    finally:
        server.stop()


def mailto_of(data: bytes) -> tuple[str, str]:
    """(address, subject) of the mailto: URI in a message's List-Unsubscribe header."""
    from email import message_from_bytes
    from email.policy import default

    header = str(message_from_bytes(data, policy=default)["List-Unsubscribe"])
    uris = [part.strip().strip("<>") for part in header.split(",")]
    mailto = urlsplit(next(uri for uri in uris if uri.startswith("mailto:")))
    return mailto.path, parse_qs(mailto.query)["subject"][0]


def request_mail(sender: str, to: str, subject: str) -> bytes:
    """The message a mail client sends when its user follows a mailto: link."""
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Wed, 02 Dec 2026 07:30:00 +0000"
    message["Message-ID"] = make_msgid(domain="client.example.net")
    message.set_content("")
    return message.as_bytes()


@pytest.mark.parametrize("container", ["maildir", "mbox"])
def test_the_mailto_of_a_sent_message_unsubscribes_like_the_one_click_link(
    ws: Workspace, store: Store, tmp_path: Path, container: str
) -> None:
    to, subject = mailto_of(sent_messages(ws)[GRACE])
    assert to == MAILBOX and subject.startswith("unsubscribe ")
    reply = request_mail(f"Grace Hopper <{GRACE}>", to, subject)
    if container == "maildir":
        path = maildir_with(tmp_path / "Maildir", reply)
    else:
        path = mbox_with(tmp_path / "unsubscribe.mbox", reply)

    report = process_paths(ws, [path])

    assert report.summary() == (
        "1 message: hard 0, soft 0, complaints 0, unsubscribed 1 (by link 1), ignored 0, "
        "suppressed 0"
    )
    # the token's list only, as the one-click POST does: the person stays a subscriber
    assert status_of(store, GRACE) == ("active", "unsubscribed")
    assert sendable(store) == {ADA, LINUS, INES, KOFI}
    [(source, list_id, detail)] = unsubscribes(store, GRACE)
    assert (source, list_id, detail["via"]) == ("mail", 1, "mailto")
    assert detail["campaign_id"] == 1

    again = process_paths(ws, [path])
    assert again.summary() == (
        "1 message: hard 0, soft 0, complaints 0, unsubscribed 0, "
        "ignored 1 (already processed 1), suppressed 0"
    )
    assert len(unsubscribes(store, GRACE)) == 1


def test_a_tampered_token_from_the_mailto_acts_on_nobody_it_names(
    ws: Workspace, store: Store, tmp_path: Path
) -> None:
    to, subject = mailto_of(sent_messages(ws)[ADA])
    word, token = subject.split(" ")
    payload, signature = token.split(".")
    # the same claim (Ada, list 1, campaign 1) under another signature, then Ada's id
    # swapped for Grace's in a payload that keeps Ada's signature
    grace = UnsubscribeTokens((KEY,)).make(IDS[GRACE], 1, 1).split(".")[0]
    forged = [f"{payload}.{signature[::-1]}", f"{grace}.{signature}"]
    stranger = "Mallory <mallory@elsewhere.example>"
    path = maildir_with(
        tmp_path / "Maildir", *(request_mail(stranger, to, f"{word} {f}") for f in forged)
    )

    report = process_paths(ws, [path])

    assert report.summary() == (
        "2 messages: hard 0, soft 0, complaints 0, unsubscribed 0, ignored 2 (forged 2), "
        "suppressed 0"
    )
    assert sendable(store) == set(IDS)
    assert not suppressed(store, "mallory@elsewhere.example")


# --- requests without a (valid) token ------------------------------------------------------------


def test_a_request_without_a_token_from_a_subscriber_stops_all_mail_to_them(
    ws: Workspace, store: Store
) -> None:
    other = store.ensure_list("events")
    assert other
    store.add(LINUS, list_name="events", consent=Consent(source="cli"))

    report = process_paths(ws, [FIXTURES / "from-address.eml"])

    assert report.summary() == (
        "1 message: hard 0, soft 0, complaints 0, unsubscribed 1 (by sender address 1), "
        "ignored 0, suppressed 0"
    )
    assert report.unsubscribed_senders == [(LINUS, str(FIXTURES / "from-address.eml"))]
    # no token, so no list: every list, and the address stays off any later import
    assert status_of(store, LINUS) == ("unsubscribed", "unsubscribed")
    assert not store.is_sendable(IDS[LINUS], "events")
    assert suppressed(store, LINUS)
    [(source, list_id, detail)] = unsubscribes(store, LINUS)
    assert (source, list_id, detail["via"]) == ("mail", None, "sender address")


def test_a_subject_asking_to_unsubscribe_counts_whatever_mailbox_it_reached(
    ws: Workspace, store: Store
) -> None:
    report = process_paths(ws, [FIXTURES / "reply-unsubscribe.eml"])
    assert report.unsubscribed_senders == [(KOFI, str(FIXTURES / "reply-unsubscribe.eml"))]
    assert status_of(store, KOFI) == ("unsubscribed", "unsubscribed")


def test_a_forged_token_is_a_request_from_its_sender_never_from_whom_it_names(
    ws: Workspace, store: Store
) -> None:
    report = process_paths(ws, [FIXTURES / "forged-token.eml"])

    assert report.unsubscribed_senders == [(INES, str(FIXTURES / "forged-token.eml"))]
    assert status_of(store, INES) == ("unsubscribed", "unsubscribed")
    assert status_of(store, ADA) == ("active", "active")
    assert unsubscribes(store, ADA) == []
    assert unsubscribes(store, INES)[0][2]["forged_link"] is True


def test_a_request_from_nobody_on_the_list_changes_nothing(ws: Workspace, store: Store) -> None:
    report = process_paths(ws, [FIXTURES / "stranger.eml"])
    assert report.summary() == (
        "1 message: hard 0, soft 0, complaints 0, unsubscribed 0, "
        "ignored 1 (no known subscriber 1), suppressed 0"
    )
    assert sendable(store) == set(IDS)
    # an unknown address is not put on the suppression list on an unsigned mail's word
    assert not suppressed(store, "nobody@elsewhere.example")


def test_an_auto_reply_to_the_unsubscribe_mailbox_is_not_a_request(
    ws: Workspace, store: Store
) -> None:
    report = process_paths(ws, [FIXTURES / "out-of-office.eml"])
    assert report.summary() == (
        "1 message: hard 0, soft 0, complaints 0, ignored 1 (nothing to do 1), suppressed 0"
    )
    assert status_of(store, ADA) == ("active", "active")


def test_a_rerun_after_the_person_signed_up_again_leaves_them_subscribed(
    ws: Workspace, store: Store
) -> None:
    process_paths(ws, [FIXTURES / "from-address.eml"])
    assert status_of(store, LINUS) == ("unsubscribed", "unsubscribed")
    outcome = store.add(
        LINUS, list_name="main", consent=Consent(source="web"), resubscribe="signed up again"
    )
    assert outcome == "resubscribed"

    again = process_paths(ws, [FIXTURES / "from-address.eml"])

    assert again.duplicates == 1 and again.unsubscribed_senders == []
    assert status_of(store, LINUS) == ("active", "active")


def test_every_request_fixture_is_counted_once(ws: Workspace, store: Store, tmp_path: Path) -> None:
    names = sorted(path.name for path in FIXTURES.glob("*.eml"))
    report = process_paths(ws, [FIXTURES / name for name in names])
    assert report.summary() == (
        "6 messages: hard 0, soft 0, complaints 0, "
        "unsubscribed 4 (by link 1, by sender address 3), "
        "ignored 2 (nothing to do 1, no known subscriber 1), suppressed 0"
    )
    assert sendable(store) == {ADA}
    # a test copy's token (subscriber 0, list 0) is ours but acts on nobody
    test_copy = UnsubscribeTokens((KEY,)).make(0, 0)
    late = request_mail(f"Ada <{ADA}>", MAILBOX, f"unsubscribe {test_copy}")
    box = maildir_with(tmp_path / "Maildir", late)
    assert process_paths(ws, [box]).summary() == (
        "1 message: hard 0, soft 0, complaints 0, unsubscribed 0, "
        "ignored 1 (nothing to do 1), suppressed 0"
    )
    assert sendable(store) == {ADA}


def test_cli_reports_each_address_unsubscribed_by_sender(ws: Workspace, tmp_path: Path) -> None:
    box = maildir_with(
        tmp_path / "Maildir", fixture("mailto-token.eml"), fixture("from-address.eml")
    )
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "bounces", str(box)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == (
        "2 messages: hard 0, soft 0, complaints 0, "
        "unsubscribed 2 (by link 1, by sender address 1), ignored 0, suppressed 0"
    )
    [note] = lines[:-1]
    assert note.startswith(f"unsubscribed {LINUS} from every list: a mail from that address ")
    assert note.endswith(")") and str(box) in note
    assert GRACE not in result.stdout  # a signed request needs no second look
