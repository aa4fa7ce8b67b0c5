"""mail/template.py: the wire template, per-recipient filling, List-Unsubscribe, structure."""

from __future__ import annotations

import logging
import re
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from mail_samples import (
    HTML,
    KEYS,
    NAMES,
    TEXT,
    header_block,
    parse,
    parts,
    settings,
    template,
)

from newsletter.errors import RenderError
from newsletter.mail.settings import MessageSettings
from newsletter.mail.template import build_template
from newsletter.mail.tokens import read_unsubscribe_token
from newsletter.models import Issue, Teaser
from newsletter.smtp.envelope import dot_stuff
from newsletter.store.records import Recipient
from newsletter.workspace import Workspace, load_workspace


def test_one_of_each_required_header_and_no_return_path() -> None:
    data = template().personalise(Recipient(7, "ana@example.net", "Ana"), message_key="d7")
    message = parse(data)
    for name in ("Date", "From", "To", "Subject", "MIME-Version", "Message-ID"):
        assert len(message.get_all(name, [])) == 1, name
    assert "Return-Path" not in message
    assert getaddresses([str(message["From"])]) == [
        ("The Harbour Letter", "letter@harbour.example.org")
    ]
    assert str(message["To"]) == "Ana <ana@example.net>"
    assert message["Reply-To"].addresses[0].addr_spec == "desk@harbour.example.org"
    assert message["MIME-Version"] == "1.0"
    parsedate_to_datetime(str(message["Date"]))  # RFC 5322 date, raises if not
    assert str(message["Message-ID"]) == "<2026-11-28-harbour-news.d7@harbour.example.org>"


def test_message_ids_are_unique_and_on_the_sender_domain() -> None:
    tmpl = template()
    ids = set()
    for number in range(50):
        message = parse(tmpl.personalise(Recipient(number, f"r{number}@example.net")))
        message_id = str(message["Message-ID"])
        assert re.fullmatch(
            r"<2026-11-28-harbour-news\.[0-9a-f]{20}@harbour\.example\.org>", message_id
        )
        ids.add(message_id)
    assert len(ids) == 50


def test_message_key_is_sanitised_into_the_message_id() -> None:
    data = template().personalise(Recipient(1, "a@example.net"), message_key="run 5/row 9 <x>")
    assert (
        str(parse(data)["Message-ID"])
        == "<2026-11-28-harbour-news.run-5-row-9-x-@harbour.example.org>"
    )


def test_multipart_alternative_text_first_then_html_utf8_qp() -> None:
    message = parse(template().personalise(Recipient(7, "ana@example.net", "Ana")))
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = list(message.iter_parts())
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    for part in (text_part, html_part):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"


def test_personalised_subject_is_filled_per_recipient() -> None:
    with_attr = template(subject="News for %%attr.city%%")
    assert parse(with_attr.personalise(Recipient(1, "a@example.net")))["Subject"] == "News for"
    tmpl = template(subject="%%first_name%%, your harbour news")
    assert parse(tmpl.personalise(Recipient(1, "a@example.net", "Inés Núñez")))["Subject"] == (
        "Inés, your harbour news"
    )
    assert parse(tmpl.personalise(Recipient(2, "b@example.net", "Bo")))["Subject"] == (
        "Bo, your harbour news"
    )


@pytest.mark.parametrize("name", NAMES)
def test_any_name_fills_all_parts_correctly_and_keeps_every_line_short(name: str) -> None:
    recipient = Recipient(42, "ines@example.net", name, {"City": "Málaga & <Sevilla>"})
    data = template().personalise(recipient)
    assert data.isascii()
    lines = data.split(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert not any(line.startswith(b".") for line in lines), "a line SMTP would dot-stuff"
    # what lets the sender skip both scans of the message (smtp.envelope.dot_stuff)
    assert dot_stuff(data, wire_ready=True) == dot_stuff(data)
    head, body = data.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 998 for line in lines)
    assert all(len(line) <= 76 for line in body.split(b"\r\n")), "QP lines over 76"
    message = parse(data)
    clean = " ".join(name.replace("\r", " ").replace("\n", " ").replace("\t", " ").split())
    greeting = clean or "reader"
    text, html_text = parts(message)
    url = re.search(r"https://harbour\.example\.org/u/([A-Za-z0-9_.-]+)", text)
    assert url is not None
    assert f"Hello {greeting}," in text
    assert "Your city: Málaga & <Sevilla>." in text
    assert "A literal %%not_a_slot%% stays." in text
    assert "Sent to ines@example.net." in text
    escaped = greeting.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.replace('"', "&quot;").replace("'", "&#x27;")
    assert f"Hello {escaped},</p>" in html_text
    assert "Your city: Málaga &amp; &lt;Sevilla&gt;." in html_text
    assert f'href="{url.group(0)}"' in html_text
    assert message["To"].addresses[0].addr_spec == "ines@example.net"
    # RFC 2047 decoding joins adjacent encoded words (the email package's address parser
    # wrongly adds a space between them, so decode the phrase with the compliant API)
    raw_to = re.search(rb"^To: ([^\r\n]*(?:\r\n [^\r\n]*)*)", head, re.M)
    assert raw_to is not None
    phrase = raw_to.group(1).decode("ascii").replace("\r\n", "").rsplit(" <", 1)[0]
    decoded = str(make_header(decode_header(phrase)))
    if decoded.startswith('"'):
        decoded = decoded[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    assert decoded == (clean or "<ines@example.net>")
    assert "Bcc" not in message
    assert len(message.get_all("To", [])) == 1
    assert b"%%" not in head  # no header slot left unfilled


def test_unsubscribe_url_carries_a_token_for_this_subscriber_list_and_campaign() -> None:
    tmpl = template()
    data = tmpl.personalise(Recipient(42, "ana@example.net", "Ana"))
    text, _ = parts(parse(data))
    token = re.search(r"https://harbour\.example\.org/u/([A-Za-z0-9_.-]+)", text)
    assert token is not None
    claim = read_unsubscribe_token(KEYS, token.group(1))
    assert (claim.subscriber_id, claim.list_id, claim.campaign_id) == (42, 3, 12)
    assert "ana@example.net" not in token.group(0)


def test_template_is_built_once_and_slots_survive_as_tokens() -> None:
    tmpl = template()
    assert tmpl.slots == {"greeting_name", "attr.city", "email", "unsubscribe_url"}
    assert "%%greeting_name%%" in tmpl.wire and "%%@to%%" in tmpl.wire


def test_missing_unsubscribe_slot_is_refused_at_build() -> None:
    with pytest.raises(RenderError, match="unsubscribe_url"):
        build_template(
            settings(),
            subject="s",
            html_body="<p>no link</p>",
            text_body=TEXT,
            campaign="c",
            list_id=1,
            list_name="main",
        )


def test_test_send_is_marked_in_subject_and_header() -> None:
    message = parse(template(test=True).personalise(Recipient(0, "me@example.net")))
    assert message["Subject"].startswith("[TEST] Harbour news")
    assert message["X-Newsletter-Test"] == "yes"
    assert "X-Newsletter-Test" not in parse(template().personalise(Recipient(0, "m@example.net")))


def test_one_list_unsubscribe_with_one_https_uri_and_a_mailto() -> None:
    message = parse(template().personalise(Recipient(42, "ana@example.net")))
    values = message.get_all("List-Unsubscribe", [])
    assert len(values) == 1
    uris = re.findall(r"<([^>]*)>", str(values[0]))
    https = [u for u in uris if u.startswith("https://")]
    assert len(https) == 1
    assert https[0].startswith("https://harbour.example.org/u/")
    mailtos = [u for u in uris if u.startswith("mailto:")]
    assert len(mailtos) == 1 and len(uris) == 2
    assert mailtos[0].startswith("mailto:leave@harbour.example.org?subject=unsubscribe%20")


def test_the_mailto_subject_carries_the_recipients_signed_token() -> None:
    built = template()
    for subscriber_id in (42, 7):
        message = parse(built.personalise(Recipient(subscriber_id, "ana@example.net")))
        found = re.search(r"<mailto:([^?>]+)\?([^>]*)>", str(message["List-Unsubscribe"]))
        assert found is not None and found.group(1) == "leave@harbour.example.org"
        query = parse_qs(found.group(2), strict_parsing=True)
        word, token = query["subject"][0].split(" ")
        assert word == "unsubscribe"
        # the same claim as the https link: the list and the send it came from
        claim = read_unsubscribe_token(KEYS, token)
        assert (claim.subscriber_id, claim.list_id, claim.campaign_id) == (subscriber_id, 3, 12)
        assert token in str(message["List-Unsubscribe"]).split(",")[0]


def test_no_mailto_without_an_unsubscribe_mailbox() -> None:
    message = parse(template(unsubscribe_mailbox="").personalise(Recipient(4, "a@example.net")))
    uris = re.findall(r"<([^>]*)>", str(message["List-Unsubscribe"]))
    assert len(uris) == 1 and uris[0].startswith("https://harbour.example.org/u/")


def test_http_base_url_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="newsletter.mail.template"):
        template(base_url="http://localhost:8080")
    assert "not https" in caplog.text


def test_one_click_header_is_byte_exact_and_single() -> None:
    data = template().personalise(Recipient(42, "ana@example.net"))
    head = header_block(data)
    assert head.count(b"List-Unsubscribe-Post:") == 1
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in head


def test_links_use_the_base_url_from_the_environment(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", ",".join(KEYS))  # the keys HTML was made with
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://letters.example.net/harbour")
    loaded = MessageSettings.from_workspace(load_workspace(workspace_dir))
    tmpl = build_template(
        loaded,
        subject="s",
        html_body=HTML,
        text_body=TEXT,
        campaign="c",
        list_id=1,
        list_name="main",
    )
    message = parse(tmpl.personalise(Recipient(3, "a@example.net")))
    assert re.search(
        r"<https://letters\.example\.net/harbour/u/[\w.-]+>", str(message["List-Unsubscribe"])
    )
    assert "https://letters.example.net/harbour/u/" in parts(message)[1]


def test_real_rendered_issue_personalises_into_a_valid_message(workspace: Workspace) -> None:
    render = pytest.importorskip("newsletter.render.pipeline")
    issue = Issue(
        subject="Harbour news: the new ferry timetable",
        date="2026-11-28",
        preheader="Ferries, a café and the lamps on pier 3",
        intro="Three short items from the harbour this week.",
        teasers=[
            Teaser(
                title="The ferry timetable changes on Monday",
                summary="Boats to the island leave every forty minutes from Monday, and the "
                "last evening ferry now waits for the late train. Tickets bought before the "
                "change stay valid until the end of the year.",
                url="https://www.example.org/ferries",
                image="https://www.example.org/img/ferry.jpg",
                image_alt="A white ferry at the pier",
            )
        ],
    )
    rendered = render.render_issue(workspace, issue)
    tmpl = build_template(
        MessageSettings.from_workspace(workspace),
        subject=rendered.subject,
        html_body=rendered.html,
        text_body=rendered.text,
        campaign="2026-11-28-harbour-news",
        list_id=1,
        list_name=workspace.config.send.list,
    )
    data = tmpl.personalise(Recipient(5, "nuno@example.net", "Nuño"))
    assert all(len(line) <= 76 for line in data.split(b"\r\n\r\n", 1)[1].split(b"\r\n"))
    assert b"\r\n." not in data  # the CSS rules (".mj-column-per-50 {") are QP-encoded
    text, html_text = parts(parse(data))
    assert "Nuño" in text and "Nuño" in html_text
    assert "nuno@example.net" in text
    assert "%%" not in text and "%%" not in html_text
    assert "https://brief.example.org/u/" in html_text
