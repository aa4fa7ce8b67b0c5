"""message.py: the wire template, per-recipient filling, headers, VERP and DKIM.

Sender rules covered: 1, 2, 3, 4, 14, 15, 24, 29 (see SENDER-RULES.md).
"""

from __future__ import annotations

import email
import email.policy
import logging
import quopri
import re
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs

import dkim
import pytest

from newsletter.errors import ConfigError, RenderError
from newsletter.message import (
    DkimSigner,
    MessageSettings,
    MessageTemplate,
    Recipient,
    build_template,
    decode_verp,
    encoded_words,
    load_dkim_signer,
    qp_encode_with_slots,
    qp_value,
    verp_address,
)
from newsletter.models import Issue, Teaser
from newsletter.slots import SlotGrammar
from newsletter.smtp.envelope import dot_stuff
from newsletter.tokens import read_unsubscribe_token
from newsletter.workspace import Workspace, load_workspace

DKIM_DIR = Path(__file__).resolve().parent / "fixtures" / "dkim"
KEYS = ("test-key-new", "test-key-old")
# render writes slots as tokens of the signing keys' grammar; these parts stand for its output
SLOTS = SlotGrammar.for_keys(KEYS)

HTML = SLOTS.mark("""<!doctype html>
<html><head><meta charset="utf-8"><title>The Harbour Letter</title></head>
<body style="margin:0;padding:0;background:#f4f1ea">
<p style="font-family:Georgia,serif;font-size:16px;line-height:24px">Hello %%greeting_name%%,</p>
<p style="font-family:Georgia,serif;font-size:16px">The ferry timetable changes on Monday; \
the café on pier 3 reopens — and yes, 100% of the lamps work again.</p>
<p>Your city: %%attr.city%%. A literal %%not_a_slot%% stays.</p>
<p style="font-size:12px;color:#666">Sent to %%email%%. \
<a href="%%unsubscribe_url%%" style="color:#666">Unsubscribe</a></p>
</body></html>
""")
TEXT = SLOTS.mark("""Hello %%greeting_name%%,

The ferry timetable changes on Monday; the café on pier 3 reopens — and yes,
100% of the lamps work again.

Your city: %%attr.city%%. A literal %%not_a_slot%% stays.

Sent to %%email%%. Unsubscribe: %%unsubscribe_url%%
""")

NAMES = [
    "",
    "Ana",
    "Inés Núñez",
    "Zoë = Ünal",
    "<b>Bold</b> & Co",
    'O\'Brien, "Pat"',
    "=?utf-8?q?fake?=",
    "Łukasz Żółć " * 40,
    "x" * 600,
    "Ünicode " * 120,
    "Eve\r\nBcc: victim@example.net",
    ".Dot at the start\n.and after a newline",
    "." * 200,
    "Tab\there",
    "李小龍",
    "%%email%% %%@to%% %%html:email%%",
]


def settings(**overrides: str) -> MessageSettings:
    values: dict[str, object] = {
        "publication": "The Harbour Letter",
        "from_name": "The Harbour Letter",
        "from_address": "letter@harbour.example.org",
        "base_url": "https://harbour.example.org",
        "secret_keys": KEYS,
        "reply_to": "desk@harbour.example.org",
        "unsubscribe_mailbox": "leave@harbour.example.org",
    }
    values.update(overrides)
    return MessageSettings(**values)  # type: ignore[arg-type]


def template(
    *, dkim_signer: DkimSigner | None = None, test: bool = False, subject: str = "", **kw: str
) -> MessageTemplate:
    return build_template(
        settings(**kw),
        subject=subject or "Harbour news — week 48: ferries, cafés & lamps",
        html_body=HTML,
        text_body=TEXT,
        campaign="2026-11-28-harbour-news",
        list_id=3,
        list_name="Main",
        campaign_id=12,
        dkim_signer=dkim_signer,
        test=test,
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    text_part, html_part = list(message.iter_parts())
    return str(text_part.get_content()), str(html_part.get_content())


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def dns_stub(record_file: str):  # type: ignore[no-untyped-def]
    record = (DKIM_DIR / record_file).read_bytes().strip()

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news2026._domainkey.harbour.example.org."
        return record

    return lookup


def signer(bits: int = 2048, domain: str = "harbour.example.org") -> DkimSigner:
    pem = (DKIM_DIR / f"test-only-rsa{bits}.private.pem").read_bytes()
    return DkimSigner(pem, domain=domain, selector="news2026")


# --- rule 14 and 15: headers and structure ----------------------------------------------------


def test_rule14_one_of_each_required_header_and_no_return_path() -> None:
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


def test_rule14_message_ids_are_unique_and_on_the_sender_domain() -> None:
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


def test_rule15_multipart_alternative_text_first_then_html_utf8_qp() -> None:
    message = parse(template().personalise(Recipient(7, "ana@example.net", "Ana")))
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = list(message.iter_parts())
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    for part in (text_part, html_part):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"


def test_subject_is_rfc2047_encoded_and_decodes_back() -> None:
    data = template().personalise(Recipient(7, "ana@example.net"))
    raw_subject = re.search(rb"^Subject: (.*(?:\r\n .*)*)", data, re.M)
    assert raw_subject is not None and raw_subject.group(1).startswith(b"=?utf-8?b?")
    assert parse(data)["Subject"] == "Harbour news — week 48: ferries, cafés & lamps"


def test_long_subjects_fold_within_limits() -> None:
    for subject in ("Ferries " * 40, "Fähren und Cafés " * 30):
        data = template(subject=subject).personalise(Recipient(7, "ana@example.net"))
        assert " ".join(parse(data)["Subject"].split()) == " ".join(subject.split())
        folded = re.search(rb"^Subject: [^\r\n]*(?:\r\n [^\r\n]*)*", data, re.M)
        assert folded is not None and folded.group(0).count(b"\r\n") >= 3
        for line in folded.group(0).split(b"\r\n"):
            assert len(line) <= 78, line


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


# --- personalisation --------------------------------------------------------------------------


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


def test_qp_value_chunks_long_values_under_the_line_limit() -> None:
    chunk = qp_value("Ü" * 100 + "=" * 30)
    lines = chunk.split(b"=\r\n")
    assert all(len(line) <= 75 for line in lines)
    assert not chunk.endswith(b"=\r\n")
    assert qp_value("plain-ascii.value") == b"plain-ascii.value"


def test_qp_never_starts_a_line_with_a_dot() -> None:
    # SMTP doubles a leading "." in transit; encoding it instead (=2E) means the
    # transport never has to rewrite a message (and DKIM never sees the difference)
    encoded = qp_encode_with_slots(".mj-column { width: 100% }\n" + "x" * 75 + ".tail\n", SLOTS)
    assert not any(line.startswith(".") for line in encoded.split("\r\n"))
    assert quopri.decodestring(encoded.encode()) == (
        b".mj-column { width: 100% }\r\n" + b"x" * 75 + b".tail\r\n"
    )
    for value in (".", ".lead", "a" * 75 + ".b", "Ü" * 30 + "." * 40):
        chunk = qp_value(value)
        assert not any(line.startswith(b".") for line in chunk.split(b"=\r\n"))
        assert quopri.decodestring(chunk).decode("utf-8") == value


def test_qp_template_encodes_trailing_space_and_percent() -> None:
    text = SLOTS.mark("end with space \n100%\nslot %%email%% at end %%name%%\n")
    encoded = qp_encode_with_slots(text + "and %%email%% as text\n", SLOTS)
    assert encoded.split("\r\n")[0] == "end with space=20"
    assert "100=25" in encoded
    assert f"=\r\n{SLOTS.token('email')}=\r\n" in encoded
    assert "and =25=25email=25=25 as text" in encoded


def test_encoded_words_stay_under_75_chars() -> None:
    words = encoded_words("Ünicode " * 50)
    assert all(len(word) <= 75 for word in words)


def test_test_send_is_marked_in_subject_and_header() -> None:
    message = parse(template(test=True).personalise(Recipient(0, "me@example.net")))
    assert message["Subject"].startswith("[TEST] Harbour news")
    assert message["X-Newsletter-Test"] == "yes"
    assert "X-Newsletter-Test" not in parse(template().personalise(Recipient(0, "m@example.net")))


def test_bad_recipient_address_is_a_caller_bug() -> None:
    for address in ("a b@example.net", "a@example.net>", "x\r\n@example.net", ""):
        with pytest.raises(ValueError):
            template().personalise(Recipient(1, address))


# --- rules 1 and 2: List-Unsubscribe ----------------------------------------------------------


def test_rule1_one_list_unsubscribe_with_one_https_uri_and_a_mailto() -> None:
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


def test_rule1_the_mailto_subject_carries_the_recipients_signed_token() -> None:
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


def test_rule1_no_mailto_without_an_unsubscribe_mailbox() -> None:
    message = parse(template(unsubscribe_mailbox="").personalise(Recipient(4, "a@example.net")))
    uris = re.findall(r"<([^>]*)>", str(message["List-Unsubscribe"]))
    assert len(uris) == 1 and uris[0].startswith("https://harbour.example.org/u/")


def test_rule1_http_base_url_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="newsletter.message"):
        template(base_url="http://localhost:8080")
    assert "not https" in caplog.text


def test_rule2_one_click_header_is_byte_exact_and_single() -> None:
    data = template().personalise(Recipient(42, "ana@example.net"))
    head = header_block(data)
    assert head.count(b"List-Unsubscribe-Post:") == 1
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in head


def test_list_id_names_the_publication_and_list() -> None:
    message = parse(template().personalise(Recipient(1, "a@example.net")))
    assert str(message["List-Id"]) == "The Harbour Letter <main.harbour.example.org>"


# --- rule 24: VERP ----------------------------------------------------------------------------


def test_rule24_envelope_sender_is_verp_on_the_sender_domain_and_decodes() -> None:
    tmpl = template()
    sender = tmpl.envelope_sender(Recipient(42, "ana@example.net"))
    assert re.fullmatch(r"bounces\+42-[0-9a-f]{12}@harbour\.example\.org", sender)
    assert decode_verp(sender, KEYS) == 42
    assert decode_verp(f"<{sender.upper()}>", KEYS) == 42  # MTAs may change the case
    assert "Return-Path" not in parse(tmpl.personalise(Recipient(42, "ana@example.net")))


def test_rule24_configured_bounce_address_and_forgery() -> None:
    tmpl = template(bounce_address="returns@mail.harbour.example.org")
    sender = tmpl.envelope_sender(Recipient(9, "a@example.net"))
    assert sender.startswith("returns+9-") and sender.endswith("@mail.harbour.example.org")
    forged = sender.replace("returns+9-", "returns+10-")
    assert decode_verp(forged, KEYS) is None
    assert decode_verp("returns@mail.harbour.example.org", KEYS) is None
    assert decode_verp("someone+x-y@example.net", KEYS) is None
    # non-ASCII in a forged address is a "no", never an error
    mac = sender.partition("-")[2].partition("@")[0]
    assert decode_verp(f"returns+9-{mac[:-1]}é@mail.harbour.example.org", KEYS) is None
    assert decode_verp(f"returns+٩-{mac}@mail.harbour.example.org", KEYS) is None
    # after rotation the old key still decodes bounces of mail sent before
    old = verp_address("b@harbour.example.org", 5, ("test-key-old",))
    assert decode_verp(old, KEYS) == 5
    assert decode_verp(old, ("unrelated",)) is None


# --- rules 3, 4, 29: DKIM and Feedback-ID -----------------------------------------------------


def test_rule3_dkim_covers_list_unsubscribe_and_verifies_on_the_exact_bytes() -> None:
    tmpl = template(dkim_signer=signer())
    data = tmpl.personalise(Recipient(42, "inés@example.net".replace("é", "e"), "Inés Núñez"))
    assert data.startswith(b"DKIM-Signature: ")
    message = parse(data)
    tags = dict(
        item.strip().split("=", 1)
        for item in "".join(str(message["DKIM-Signature"]).split()).split(";")
        if item.strip()
    )
    signed = tags["h"].split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-id"):
        assert name in signed
    for name in ("list-unsubscribe", "list-unsubscribe-post", "mime-version", "content-type"):
        assert name in signed
    assert tags["d"] == "harbour.example.org" and tags["s"] == "news2026"
    assert dkim.verify(data, dnsfunc=dns_stub("test-only-rsa2048.dns.txt"))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Two-Clicks"),
        (b"Hello =\r\nreader=\r\n", b"Hello =\r\nreaders=\r\n"),
        (b"List-Id: The Harbour", b"List-Id: The Harbor"),
    ],
)
def test_rule3_any_change_to_signed_bytes_breaks_the_signature(old: bytes, new: bytes) -> None:
    data = template(dkim_signer=signer()).personalise(Recipient(42, "ana@example.net"))
    assert old in data
    assert not dkim.verify(data.replace(old, new, 1), dnsfunc=dns_stub("test-only-rsa2048.dns.txt"))


def test_rule4_keys_under_1024_bits_are_refused() -> None:
    with pytest.raises(ConfigError, match="512 bits"):
        signer(512)


def test_rule4_1024_bit_key_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="newsletter.message"):
        small = signer(1024)
    assert "1024 bits" in caplog.text
    data = template(dkim_signer=small).personalise(Recipient(1, "a@example.net"))
    assert dkim.verify(data, dnsfunc=dns_stub("test-only-rsa1024.dns.txt"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="newsletter.message"):
        signer(2048)
    assert caplog.text == ""


def test_rule4_dkim_domain_must_align_with_the_from_domain() -> None:
    signer(domain="example.org").check_alignment("harbour.example.org")  # a parent: aligned
    signer(domain="harbour.example.org").check_alignment("HARBOUR.example.org")
    with pytest.raises(ConfigError, match="DMARC"):
        signer(domain="other.example").check_alignment("harbour.example.org")
    with pytest.raises(ConfigError, match="DMARC"):
        signer(domain="mail.harbour.example.org").check_alignment("harbour.example.org")
    with pytest.raises(ConfigError, match="DMARC"):
        template(dkim_signer=signer(domain="badharbour.example.org"))


def test_rule4_unreadable_or_non_rsa_keys_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="PEM"):
        DkimSigner(
            b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
            domain="d",
            selector="s",
        )
    with pytest.raises(ConfigError, match=r"\[dkim\]"):
        DkimSigner(
            (DKIM_DIR / "test-only-rsa2048.private.pem").read_bytes(), domain="", selector=""
        )


def test_rule29_feedback_id_is_constant_has_no_per_message_value_and_is_signed() -> None:
    tmpl = template(dkim_signer=signer())
    values = set()
    for number in range(5):
        data = tmpl.personalise(
            Recipient(number, f"r{number}@example.net"), message_key=f"k{number}"
        )
        message = parse(data)
        assert len(message.get_all("Feedback-ID", [])) == 1
        feedback = str(message["Feedback-ID"])
        assert f"k{number}" not in feedback and f"r{number}" not in feedback
        assert str(message["Message-ID"]).strip("<>").split("@")[0] not in feedback
        values.add(feedback)
        assert "feedback-id" in "".join(str(message["DKIM-Signature"]).split())
        assert dkim.verify(data, dnsfunc=dns_stub("test-only-rsa2048.dns.txt"))
    assert values == {"2026-11-28-harbour-news:main:newsletter:harbour.example.org"}
    assert values.pop().split(":")[-1] == "harbour.example.org"  # SenderId: the sender domain


# --- workspace wiring -------------------------------------------------------------------------


def _with_dkim_section(workspace_dir: Path, domain: str = "example.org") -> None:
    config = workspace_dir / "newsletter.toml"
    original = config.read_text(encoding="utf-8").split("\n[dkim]\n")[0]
    section = f'\n[dkim]\ndomain = "{domain}"\nselector = "news2026"\n'
    config.write_text(original + section, encoding="utf-8")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_url", "https://hafen.bücher.example"),
        ("from_address", "zoë@harbour.example.org"),
        ("unsubscribe_mailbox", "leave me@harbour.example.org"),
        ("reply_to", "desk@harbour.example.org\r\nBcc: x@example.net"),
    ],
)
def test_settings_unfit_for_headers_are_config_errors(field: str, value: str) -> None:
    unfit = settings(**{field: value})
    with pytest.raises(ConfigError, match="cannot be used in a mail header"):
        build_template(
            unfit,
            subject="s",
            html_body=HTML,
            text_body=TEXT,
            campaign="c",
            list_id=1,
            list_name="main",
        )


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


def test_settings_from_the_sample_workspace(workspace: Workspace) -> None:
    loaded = MessageSettings.from_workspace(workspace)
    assert loaded.from_address == "brief@example.org"
    assert loaded.base_url == "https://brief.example.org"
    assert loaded.envelope_base == "bounces@example.org"
    assert loaded.secret_keys == ("test-key-not-secret",)
    assert load_dkim_signer(workspace) is None


@pytest.mark.parametrize("form", ["path", "relative", "pem", "escaped-pem"])
def test_dkim_key_from_env_as_path_or_pem(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    _with_dkim_section(workspace_dir)
    key_file = DKIM_DIR / "test-only-rsa2048.private.pem"
    (workspace_dir / "keys").mkdir()
    (workspace_dir / "keys" / "dkim.pem").write_bytes(key_file.read_bytes())
    pem = key_file.read_text(encoding="ascii")
    value = {
        "path": str(key_file),
        "relative": "keys/dkim.pem",
        "pem": pem,
        "escaped-pem": pem.replace("\n", "\\n"),
    }[form]
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY", value)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k")
    loaded = load_dkim_signer(load_workspace(workspace_dir))
    assert loaded is not None and loaded.bits == 2048 and loaded.domain == "example.org"


def test_dkim_key_errors_name_the_variable(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_dkim_section(workspace_dir)
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY", "missing/dkim.pem")
    with pytest.raises(ConfigError, match="NEWSLETTER_DKIM_KEY: cannot read key file"):
        load_dkim_signer(load_workspace(workspace_dir))
    _with_dkim_section(workspace_dir, domain="elsewhere.example")
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY", str(DKIM_DIR / "test-only-rsa2048.private.pem"))
    with pytest.raises(ConfigError, match="DMARC"):
        load_dkim_signer(load_workspace(workspace_dir))


# --- the real renderer's output ---------------------------------------------------------------


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
