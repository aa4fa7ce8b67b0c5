"""Shared samples of the mail tests: settings, marked parts, a template, parsing helpers."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

from newsletter.mail.dkim import DkimSigner
from newsletter.mail.settings import MessageSettings
from newsletter.mail.slots import SlotGrammar
from newsletter.mail.template import MessageTemplate, build_template

DKIM_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "dkim"
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
