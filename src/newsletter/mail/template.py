"""Rendered issue + recipient -> the exact MIME bytes handed to SMTP.

``build_template`` turns the rendered issue (HTML and text with slot tokens, see
``mail.slots``) into a ``MessageTemplate`` once per send: every header, the MIME framing
and the quoted-printable encoding of both parts (``mail.mime``) are done then, and the
result is compiled into a list of literal byte runs with the slots between them.
``MessageTemplate.personalise(recipient)`` only encodes the few slot values and joins the
runs: no MJML, no CSS inlining, no ``email`` package per recipient.

Date and Message-ID are per message; Message-ID is ``<campaign.key@sender-domain>`` where
``key`` is the caller's delivery key (so a retry of an "unknown" outcome reuses the
Message-ID and receivers can de-duplicate) or random.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

from newsletter.errors import RenderError
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.headers import (
    ONE_CLICK,
    TEST_HEADER,
    TEST_SUBJECT_PREFIX,
    clean_value,
    display_name,
    mailbox,
    unstructured_header,
)
from newsletter.mail.mime import mime_part, qp_encode_with_slots, qp_value
from newsletter.mail.settings import MessageSettings
from newsletter.mail.slots import ATTR_PREFIX, SLOT_NAME_RE, UNSUBSCRIBE_SLOT, SlotGrammar
from newsletter.mail.tokens import UnsubscribeTokens, unsubscribe_url
from newsletter.mail.verp import verp_address

if TYPE_CHECKING:
    from newsletter.store.records import Recipient

log = logging.getLogger(__name__)

# Header slots are written %%@name%%, and body slots %%text:name%% / %%html:name%% while
# compiling. Rendered text cannot forge either: the encoded parts write every literal "%"
# as =25, so the only "%%" left in them are the slot tokens turned into these.
_TO, _MESSAGE_ID, _DATE, _SUBJECT, _UNSUB_HEADER = "to", "message_id", "date", "subject", "unsub"
_UNSUB_TOKEN = "unsub_token"  # the token alone, for the mailto: subject
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_LABEL_UNSAFE = re.compile(r"[^a-z0-9-]+")

_CONTEXT_TEXT, _CONTEXT_HTML, _CONTEXT_HEADER = "text", "html", "header"


class _DateCache:
    """RFC 5322 date of the current second, formatted at most once a second."""

    def __init__(self) -> None:
        # one tuple, replaced whole, so threads never see a second with another's text
        self._current: tuple[int, bytes] = (-1, b"")

    def now(self) -> bytes:
        second = int(time.time())
        cached_second, value = self._current
        if second != cached_second:
            value = format_datetime(datetime.fromtimestamp(second, UTC)).encode("ascii")
            self._current = (second, value)
        return value


def _label(text: str, fallback: str) -> str:
    return _LABEL_UNSAFE.sub("-", text.lower()).strip("-")[:60] or fallback


@dataclass(frozen=True)
class _Compiled:
    literals: tuple[bytes, ...]
    slots: tuple[tuple[str, str], ...]  # (context, name) between literals[i] and [i+1]


# a slot marked with where it sits: "@" (a header), "text:" or "html:" (a body part)
_MARKER_RE = re.compile(r"%%(@|text:|html:)(" + SLOT_NAME_RE.pattern + r")%%")


def _compile(wire: str) -> _Compiled:
    """Split marked template text into literal byte runs and (context, slot name) pairs."""
    literals: list[bytes] = []
    slots: list[tuple[str, str]] = []
    pos = 0
    for match in _MARKER_RE.finditer(wire):
        context = _CONTEXT_HEADER if match.group(1) == "@" else match.group(1)[:-1]
        literals.append(wire[pos : match.start()].encode("ascii"))
        slots.append((context, match.group(2)))
        pos = match.end()
    literals.append(wire[pos:].encode("ascii"))
    return _Compiled(tuple(literals), tuple(slots))


def _join(compiled: _Compiled, fill: Callable[[str, str], bytes]) -> bytes:
    """The literal runs with ``fill(context, name)`` between them."""
    parts = [compiled.literals[0]]
    for (context, name), literal in zip(compiled.slots, compiled.literals[1:], strict=True):
        parts.append(fill(context, name))
        parts.append(literal)
    return b"".join(parts)


class MessageTemplate:
    """One issue, ready to personalise: build with ``build_template``.

    ``wire`` is the whole message as text with slot tokens left in (for inspection);
    ``personalise`` gives the bytes for one recipient; ``envelope_sender`` its VERP.
    Immutable after construction, so worker threads can share one.
    """

    def __init__(
        self,
        *,
        settings: MessageSettings,
        headers: str,
        body: str,
        subject: str,
        campaign: str,
        list_id: int,
        campaign_id: int | None,
        dkim_signer: DkimSigner | None,
        grammar: SlotGrammar,
    ) -> None:
        self.settings = settings
        self.subject = subject
        self.grammar = grammar
        self.campaign = campaign
        self.list_id = list_id
        self.campaign_id = campaign_id
        self.dkim_signer = dkim_signer
        # for reading: the message with plain %%slot%% tokens (%%@name%% for header slots)
        self.wire = re.sub(r"%%(?:text|html):", "%%", headers + "\r\n" + body)
        self._headers = _compile(headers)
        self._body = _compile(body)
        self._marked_subject = grammar.mark(subject)
        self._subject_slots = bool(grammar.names(self._marked_subject))
        self._tokens = UnsubscribeTokens(settings.secret_keys)
        self._dates = _DateCache()
        self.slots = frozenset(name for _, name in self._body.slots)

    def personalise(self, recipient: Recipient, *, message_key: str | None = None) -> bytes:
        """The complete wire message (CRLF, DKIM-signed when configured) for ``recipient``.

        ``message_key`` (e.g. the delivery row id) makes the Message-ID; random if None.
        Raises ValueError for an address that is not a bare ASCII-safe address.
        """
        values = self.slot_values(recipient)
        header_values = {
            _TO: mailbox(recipient.name, recipient.email).encode("utf-8"),
            _MESSAGE_ID: self._message_id(message_key),
            _DATE: self._dates.now(),
            _UNSUB_HEADER: values[UNSUBSCRIBE_SLOT].encode("ascii"),
        }
        if self.settings.unsubscribe_mailbox:
            # the link's own token: a URL ends in it, and it has no "/" of its own
            token = values[UNSUBSCRIBE_SLOT].rpartition("/")[2]
            header_values[_UNSUB_TOKEN] = token.encode("ascii")
        if self._subject_slots:
            subject = self.grammar.fill(self._marked_subject, values, html=False)
            header_values[_SUBJECT] = unstructured_header(subject).encode("ascii")
        headers = _join(self._headers, lambda _ctx, name: header_values[name])
        cache: dict[tuple[str, str], bytes] = {}

        def body_value(context: str, name: str) -> bytes:
            key = (context, name)
            if key not in cache:
                text = clean_value(values.get(name, ""))
                cache[key] = qp_value(html.escape(text) if context == _CONTEXT_HTML else text)
            return cache[key]

        body = _join(self._body, body_value)
        if self.dkim_signer is not None:
            headers = self.dkim_signer.signature(headers, body) + headers
        return headers + b"\r\n" + body

    def slot_values(self, recipient: Recipient) -> dict[str, str]:
        """The value of every slot for ``recipient`` (docs/internals.md's table)."""
        name = " ".join(clean_value(recipient.name).split())
        token = self._tokens.make(
            recipient.id, self.list_id, self.campaign_id, email=recipient.email
        )
        values = {
            "email": recipient.email,
            "name": name,
            "first_name": name.split(" ", 1)[0],
            "greeting_name": name or self.settings.greeting_fallback,
            UNSUBSCRIBE_SLOT: unsubscribe_url(self.settings.base_url, token),
        }
        if recipient.attributes:
            for key, value in recipient.attributes.items():
                values[ATTR_PREFIX + key.lower()] = str(value)
        return values

    def envelope_sender(self, recipient: Recipient) -> str:
        """MAIL FROM for ``recipient``: the VERP address that decodes to its subscriber id."""
        return verp_address(self.settings.envelope_base, recipient.id, self.settings.secret_keys)

    def _message_id(self, message_key: str | None) -> bytes:
        key = _KEY_UNSAFE.sub("-", message_key)[:64] if message_key else secrets.token_hex(10)
        return f"<{self.campaign}.{key}@{self.settings.domain}>".encode("ascii")


def _mark_context(encoded: str, context: str, grammar: SlotGrammar) -> str:
    """Tag each slot token in an encoded part with its part (``%%text:name%%``)."""
    return grammar.pattern.sub(lambda m: f"%%{context}:{m.group(1)}%%", encoded)


def _check_parts(grammar: SlotGrammar, html_body: str, text_body: str) -> None:
    """RenderError unless both parts carry the unsubscribe slot."""
    for part, content in (("HTML", html_body), ("text", text_body)):
        if UNSUBSCRIBE_SLOT not in grammar.names(content):
            raise RenderError(
                f"the {part} part has no %%{UNSUBSCRIBE_SLOT}%% slot; every message needs an "
                "unsubscribe link in its body",
                hint="write {{ slot('unsubscribe_url') }} in the template footer",
            )


def _header_block(
    settings: MessageSettings,
    *,
    subject_header: str,
    campaign: str,
    list_label: str,
    boundary: str,
    test: bool,
) -> str:
    """Every header line (CRLF-ended), with ``%%@name%%`` where a recipient's value goes."""
    lines = [
        f"Date: %%@{_DATE}%%",
        "From: " + mailbox(settings.from_name, settings.from_address),
    ]
    if settings.reply_to:
        lines.append("Reply-To: " + mailbox("", settings.reply_to))
    lines.append(f"To: %%@{_TO}%%")
    lines.append("Subject: " + subject_header)
    lines.append(f"Message-ID: %%@{_MESSAGE_ID}%%")
    lines.append(
        f"List-Id: {display_name(settings.publication)} <{list_label}.{settings.domain}>".lstrip()
    )
    unsubscribe = f"List-Unsubscribe: <%%@{_UNSUB_HEADER}%%>"
    if settings.unsubscribe_mailbox:
        # the signed token in the subject lets `newsletter bounces` act on the mail it brings
        unsubscribe += (
            f",\r\n <mailto:{settings.unsubscribe_mailbox}"
            f"?subject=unsubscribe%20%%@{_UNSUB_TOKEN}%%>"
        )
    lines.append(unsubscribe)
    lines.append(f"List-Unsubscribe-Post: {ONE_CLICK}")
    # Gmail's feedback loop: the same value for the whole send, sender id last
    lines.append(f"Feedback-ID: {campaign}:{list_label}:newsletter:{settings.domain}")
    if test:
        lines.append(f"{TEST_HEADER}: yes")
    lines.append("MIME-Version: 1.0")
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    return "".join(line + "\r\n" for line in lines)


def _body(boundary: str, grammar: SlotGrammar, html_body: str, text_body: str) -> str:
    """The multipart/alternative body: text first, then HTML, slots tagged with their part."""
    text_part = _mark_context(qp_encode_with_slots(text_body, grammar), _CONTEXT_TEXT, grammar)
    html_part = _mark_context(qp_encode_with_slots(html_body, grammar), _CONTEXT_HTML, grammar)
    return (
        mime_part(boundary, "plain", text_part)
        + mime_part(boundary, "html", html_part)
        + f"--{boundary}--\r\n"
    )


def build_template(
    settings: MessageSettings,
    *,
    subject: str,
    html_body: str,
    text_body: str,
    campaign: str,
    list_id: int,
    list_name: str,
    campaign_id: int | None = None,
    dkim_signer: DkimSigner | None = None,
    test: bool = False,
) -> MessageTemplate:
    """Build the per-issue template once (headers, MIME framing, QP bodies).

    ``html_body``/``text_body`` are render's output with slots unfilled: only tokens of
    the slot grammar of ``settings.secret_keys`` are filled (see ``mail.slots``);
    ``subject`` is the editor's, its ``%%name%%`` slots are filled. ``campaign`` a
    short name for the send (the issue slug) used in Message-ID and Feedback-ID;
    ``list_id``/``list_name`` the list sent to (token payload, List-Id). ``test`` marks a
    test send: "[TEST] " subject prefix and an ``X-Newsletter-Test: yes`` header.
    Raises RenderError when either part lacks the unsubscribe slot, ConfigError
    for settings that cannot go into headers or a DKIM domain not aligned with From.
    """
    settings.check_for_headers()
    grammar = SlotGrammar.for_keys(settings.secret_keys)
    _check_parts(grammar, html_body, text_body)
    if not settings.base_url.startswith("https://"):
        log.warning(
            "base URL %s is not https: mail providers ignore a plain http List-Unsubscribe",
            settings.base_url,
        )
    if dkim_signer is not None:
        dkim_signer.check_alignment(settings.domain)
    campaign = _label(campaign, "issue")
    if test:
        subject = TEST_SUBJECT_PREFIX + subject
    subject_has_slots = bool(grammar.names(grammar.mark(subject)))
    boundary = "=_nl_" + secrets.token_hex(12)  # "=_" never occurs in QP output
    headers = _header_block(
        settings,
        subject_header=f"%%@{_SUBJECT}%%" if subject_has_slots else unstructured_header(subject),
        campaign=campaign,
        list_label=_label(list_name, "list"),
        boundary=boundary,
        test=test,
    )
    return MessageTemplate(
        settings=settings,
        headers=headers,
        body=_body(boundary, grammar, html_body, text_body),
        subject=subject,
        campaign=campaign,
        list_id=list_id,
        campaign_id=campaign_id,
        dkim_signer=dkim_signer,
        grammar=grammar,
    )
