"""Rendered issue + recipient -> the exact MIME bytes handed to SMTP; VERP; DKIM.

Build once, fill per recipient
------------------------------
``build_template`` turns the rendered issue (HTML and text with slot tokens, see
``slots``) into a ``MessageTemplate`` once per send: every header, the MIME
framing and the quoted-printable encoding of both parts are done then, and the result is
compiled into a list of literal byte runs with the slots between them.
``MessageTemplate.personalise(recipient)`` only encodes the few slot values and joins the
runs: no MJML, no CSS inlining, no ``email`` package per recipient.

Encoding choice: quoted-printable, never 8bit
---------------------------------------------
Both parts are UTF-8 in quoted-printable. 8bit bodies would save the encoding but need
the server's 8BITMIME, HTML lines under 998 octets (premailer output has longer ones),
and relays that downgrade 8bit to 7bit break DKIM signatures. QP is 7-bit clean
everywhere, so the bytes we sign are the bytes every hop passes on.

To fill QP bodies by plain joining, each slot sits alone between soft line breaks: the
template holds ``...text=\\r\\n%%name%%=\\r\\n...``. A value is encoded on its own (UTF-8,
``=`` -> ``=3D``, non-ASCII -> ``=XX``, HTML-escaped first in the HTML part) and split
into lines of at most 75 characters plus ``=``, so any name of any length keeps every
line within the 76-character QP limit; decoding joins the soft breaks away, so the reader
sees exactly the value in place. The common case (a short ASCII value) needs no work.

Headers: From/To display names are RFC 2047 encoded words (UTF-8, base64, at most 75
characters each, folded one per line) when not plain ASCII, a quoted string when they
hold specials; the Subject likewise. CR, LF and other control characters in any value
become spaces, so a name can never inject a header. Date and Message-ID are per message;
Message-ID is ``<campaign.key@sender-domain>`` where ``key`` is the caller's delivery key
(so a retry of an "unknown" outcome reuses the Message-ID and receivers can de-duplicate)
or random.

DKIM
----
``DkimSigner`` signs each personalised message (the body differs per recipient, so the
body hash does too) with ``c=relaxed/simple`` and an explicit header list that includes
List-Unsubscribe-Post. Header selection, canonicalisation, hashing and folding are
dkimpy's own functions; only the RSA operation goes to OpenSSL through ``cryptography``,
because dkimpy's pure-Python RSA took 10-20 ms per 2048-bit signature here against
about 1 ms (see bench/bench_message.py). Tests verify every signature with
``dkim.verify`` on the exact bytes the SMTP server received.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.errors import ConfigError, RenderError
from newsletter.slots import ATTR_PREFIX, SLOT_NAME_RE, UNSUBSCRIBE_SLOT, SlotGrammar
from newsletter.tokens import UnsubscribeTokens, unsubscribe_url
from newsletter.workspace import Workspace

# dkimpy (which imports dnspython) and cryptography are imported by DkimSigner only:
# ~0.1 s of imports that a send without NEWSLETTER_DKIM_KEY never needs.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from newsletter.store.records import Recipient

log = logging.getLogger(__name__)

# Header slots are written %%@name%%, and body slots %%text:name%% / %%html:name%% while
# compiling. Rendered text cannot forge either: the encoded parts write every literal "%"
# as =25, so the only "%%" left in them are the slot tokens turned into these.
_TO, _MESSAGE_ID, _DATE, _SUBJECT, _UNSUB_HEADER = "to", "message_id", "date", "subject", "unsub"
_UNSUB_TOKEN = "unsub_token"  # the token alone, for the mailto: subject

ONE_CLICK = "List-Unsubscribe=One-Click"
TEST_SUBJECT_PREFIX = "[TEST] "
TEST_HEADER = "X-Newsletter-Test"
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "mime-version",
    "content-type",
    TEST_HEADER.lower(),
)
MIN_DKIM_BITS = 1024
GOOD_DKIM_BITS = 2048

_QP_WIDTH = 75  # characters before the "=" of a soft line break (76 in all)
_QP_TABLE = tuple(
    chr(b) if (33 <= b <= 126 and b != 61) or b in (9, 32) else f"={b:02X}" for b in range(256)
)
# template text also encodes "%", so the only "%%" left in an encoded part are our slots
_QP_LITERAL_TABLE = tuple("=25" if b == 37 else token for b, token in enumerate(_QP_TABLE))
_QP_PLAIN = re.compile(rb"[\t !-<>-~]*")  # bytes that QP leaves as they are
# A "." opening a line is encoded: no line of an encoded part then starts with a dot, so
# SMTP dot-stuffing has nothing to do and the transport skips copying 40 KB per message.
_QP_LEADING_DOT = "=2E"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_ADDRESS_UNSAFE = re.compile(r"[\s<>\"\\,;()\[\]]")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_LABEL_UNSAFE = re.compile(r"[^a-z0-9-]+")
_WORD_BYTES = 39  # UTF-8 bytes per encoded word: 52 base64 chars, 64 with the wrapper


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageSettings:
    """The sender identity and addresses a message needs, independent of any issue."""

    publication: str
    from_name: str
    from_address: str
    base_url: str
    secret_keys: tuple[str, ...]
    reply_to: str = ""
    unsubscribe_mailbox: str = ""
    bounce_address: str = ""
    greeting_fallback: str = "reader"

    @property
    def domain(self) -> str:
        """The sender's domain (after the @ of the From address), lower case."""
        return self.from_address.rpartition("@")[2].lower()

    @property
    def envelope_base(self) -> str:
        """The bounce mailbox VERP addresses derive from: configured, else bounces@domain."""
        return self.bounce_address or f"bounces@{self.domain}"

    @classmethod
    def from_workspace(cls, workspace: Workspace) -> MessageSettings:
        """Read the [publication] and [sender] settings and the signing keys."""
        publication, sender = workspace.config.publication, workspace.config.sender
        return cls(
            publication=publication.name,
            from_name=sender.name,
            from_address=sender.address,
            base_url=workspace.base_url,
            secret_keys=workspace.secret_keys(),
            reply_to=sender.reply_to,
            unsubscribe_mailbox=sender.unsubscribe_mailbox,
            bounce_address=sender.bounce_address,
        )


# --- quoted-printable and header encoding -----------------------------------------------------


def clean_value(value: str) -> str:
    """``value`` with CR, LF and other control characters turned into single spaces."""
    return _CONTROL.sub(" ", value)


def qp_value(value: str) -> bytes:
    """A slot value as a QP chunk: lines of <= 75 chars joined by soft breaks, no final one."""
    raw = value.encode("utf-8")
    if len(raw) <= _QP_WIDTH and _QP_PLAIN.fullmatch(raw) and not raw.startswith(b"."):
        return raw
    lines: list[str] = []
    line: list[str] = []
    width = 0
    for byte in raw:
        token = _QP_TABLE[byte]
        if width + len(token) > _QP_WIDTH:
            lines.append("".join(line))
            line, width = [], 0
        if not width and token == ".":
            token = _QP_LEADING_DOT
        line.append(token)
        width += len(token)
    lines.append("".join(line))
    return "=\r\n".join(lines).encode("ascii")


def _slot_pieces(line: str, grammar: SlotGrammar) -> list[tuple[bool, str]]:
    """Split ``line`` into (is_slot, text) pieces; only ``grammar``'s tokens are slots."""
    pieces: list[tuple[bool, str]] = []
    pos = 0
    for match in grammar.pattern.finditer(line):
        pieces.append((False, line[pos : match.start()]))
        pieces.append((True, match.group(0)))
        pos = match.end()
    pieces.append((False, line[pos:]))
    return pieces


def qp_encode_with_slots(text: str, grammar: SlotGrammar) -> str:
    """Quoted-printable (UTF-8, CRLF, lines <= 76) of ``text``, ``grammar``'s slot tokens
    kept alone on a line; any other ``%%word%%`` is text (its "%" written =25).

    Each slot token is preceded and followed by a soft line break, so whatever QP chunk
    replaces it (see ``qp_value``) keeps every line within the limit. A "." that would
    open a line is written "=2E" (see ``_QP_LEADING_DOT``).
    """
    out: list[str] = []
    for source_line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line: list[str] = []
        width = 0
        for is_slot, piece in _slot_pieces(source_line, grammar):
            if is_slot:
                if line:
                    out.append("".join(line) + "=")
                    line, width = [], 0
                out.append(piece + "=")
                continue
            for char in piece:
                token = "".join(_QP_LITERAL_TABLE[b] for b in char.encode("utf-8"))
                if width + len(token) > _QP_WIDTH:
                    out.append("".join(line) + "=")
                    line, width = [], 0
                if not width and token == ".":
                    token = _QP_LEADING_DOT
                line.append(token)
                width += len(token)
        # whitespace before a hard line break would be stripped in transit: encode it
        if line and line[-1] in (" ", "\t"):
            last = f"={ord(line.pop()):02X}"
            if width + 2 > _QP_WIDTH + 1:
                out.append("".join(line) + "=")
                line = []
            line.append(last)
        out.append("".join(line))
    return "\r\n".join(out)


def encoded_words(text: str) -> list[str]:
    """RFC 2047 encoded words (UTF-8, base64) for ``text``, each under 75 characters.

    Words split at character boundaries; adjacent words decode back to ``text``.
    """
    words: list[str] = []
    chunk = b""
    for char in text:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > _WORD_BYTES:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += data
    if chunk or not words:
        words.append(chunk.decode("utf-8"))
    return [
        "=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words
    ]


def _fold_words(words: Sequence[str]) -> str:
    """Join header words with CRLF + space so every line stays short."""
    return "\r\n ".join(words)


def unstructured_header(value: str) -> str:
    """An unstructured header value (Subject): ASCII folded at spaces, else encoded words."""
    value = clean_value(value).strip()
    if value.isascii() and "=?" not in value and "%%" not in value and len(value) <= 900:
        lines: list[str] = []
        current = ""
        for word in value.split(" "):
            if current and len(current) + 1 + len(word) > 70:
                lines.append(current)
                current = word
            else:
                current = f"{current} {word}" if current else word
        lines.append(current)
        return "\r\n ".join(lines)
    return _fold_words(encoded_words(value))


def display_name(name: str) -> str:
    """A display name as an atom phrase, a quoted string or encoded words ("" if empty)."""
    name = " ".join(clean_value(name).split())
    if not name:
        return ""
    if name.isascii() and "=?" not in name and "%%" not in name and len(name) <= 70:
        if _ATEXT_PHRASE.fullmatch(name):
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _fold_words(encoded_words(name))


def mailbox(name: str, address: str) -> str:
    """``Name <address>`` (or ``<address>``) for From/To/Reply-To.

    ``address`` must be a bare address (no spaces, brackets, commas or line breaks);
    anything else raises ValueError, since it can only come from a caller bug.
    """
    if not address or _ADDRESS_UNSAFE.search(address) or _CONTROL.search(address):
        raise ValueError(f"not a bare email address: {address!r}")
    phrase = display_name(name)
    return f"{phrase} <{address}>" if phrase else f"<{address}>"


# --- VERP -------------------------------------------------------------------------------------


def _verp_mac(key: str, subscriber_id: int) -> str:
    digest = hmac.new(key.encode("utf-8"), b"newsletter.verp:%d" % subscriber_id, "sha256")
    # lower-case hex: some MTAs fold the case of local parts
    return digest.hexdigest()[:12]


def verp_address(bounce_address: str, subscriber_id: int, keys: Sequence[str]) -> str:
    """Per-recipient envelope sender: ``local+<id>-<mac>@domain`` from ``bounce_address``.

    The MAC (newest key) makes the id unforgeable, so a fake bounce cannot suppress
    someone else. ``decode_verp`` reverses it.
    """
    local, _, domain = bounce_address.rpartition("@")
    if not local or not domain or not keys:
        raise ValueError(f"cannot build a VERP address from {bounce_address!r}")
    return f"{local}+{subscriber_id}-{_verp_mac(keys[0], subscriber_id)}@{domain}"


def decode_verp(address: str, keys: Sequence[str]) -> int | None:
    """The subscriber id inside a VERP ``address`` made by ``verp_address``, else None.

    Accepts ``<...>`` brackets and any letter case; checks the MAC against every key.
    """
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    _, plus, tag = local.rpartition("+")
    id_text, dash, mac = tag.partition("-")
    # ASCII only: str.isdigit() takes other scripts' digits, and compare_digest refuses
    # non-ASCII text (a TypeError, not a "no")
    if not plus or not dash or not (id_text.isascii() and id_text.isdigit()):
        return None
    if len(id_text) > 18 or not mac.isascii():
        return None
    subscriber_id = int(id_text)
    for key in keys:
        if hmac.compare_digest(mac, _verp_mac(key, subscriber_id)):
            return subscriber_id
    return None


# --- DKIM -------------------------------------------------------------------------------------


class DkimSigner:
    """Signs personalised messages with one RSA key for ``d=domain``, ``s=selector``.

    ``private_key_pem``: PKCS#1 or PKCS#8 PEM. Raises ConfigError for a non-RSA key, a
    key under 1024 bits, or an unreadable one; logs a warning under 2048 bits.
    """

    def __init__(
        self,
        private_key_pem: bytes,
        *,
        domain: str,
        selector: str,
        source: str = "NEWSLETTER_DKIM_KEY",
        headers: Sequence[str] = SIGNED_HEADERS,
    ) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from dkim.canonicalization import CanonicalizationPolicy

        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{source}: not a readable unencrypted PEM private key",
                hint="give the PEM text or the path of the DKIM private key file",
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(f"{source}: not an RSA key", hint="DKIM needs an RSA key (2048 bits)")
        if key.key_size < MIN_DKIM_BITS:
            raise ConfigError(
                f"{source}: the DKIM key has {key.key_size} bits; receivers reject keys under "
                f"{MIN_DKIM_BITS}",
                hint="generate a 2048-bit key and publish its new DNS record",
            )
        if key.key_size < GOOD_DKIM_BITS:
            log.warning(
                "%s: the DKIM key has only %d bits; use %d", source, key.key_size, GOOD_DKIM_BITS
            )
        if not domain or not selector:
            raise ConfigError(
                "newsletter.toml [dkim]: domain and selector must be set when "
                "NEWSLETTER_DKIM_KEY is given",
                hint="add domain = ... and selector = ... under [dkim]",
            )
        self.key: rsa.RSAPrivateKey = key
        self.bits = key.key_size
        self.domain = domain.lower().rstrip(".")
        self.selector = selector
        self.headers = tuple(h.lower() for h in headers)
        self._include = tuple(h.encode("ascii") for h in self.headers)
        self._policy = CanonicalizationPolicy.from_c_value(b"relaxed/simple")

    def check_alignment(self, from_domain: str) -> None:
        """ConfigError unless d= equals ``from_domain`` or a parent of it (DMARC alignment)."""
        from_domain = from_domain.lower().rstrip(".")
        if from_domain != self.domain and not from_domain.endswith("." + self.domain):
            raise ConfigError(
                f"newsletter.toml [dkim] domain {self.domain!r} does not match the From "
                f"domain {from_domain!r}; DMARC would fail",
                hint=f"set [dkim] domain = {from_domain!r} (or a parent domain of it)",
            )

    def signature(self, header_block: bytes, body: bytes, *, timestamp: int | None = None) -> bytes:
        """The ``DKIM-Signature: ...\\r\\n`` line(s) for the message ``header_block + CRLF + body``.

        ``header_block`` is every header line, each ending in CRLF, without the blank line.
        """
        # loaded by __init__ already, so these are dictionary look-ups per message
        import dkim
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        headers, _ = dkim.rfc822_parse(header_block + b"\r\n")
        body_hash = hashlib.sha256(self._policy.canonicalize_body(body)).digest()
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", b"relaxed/simple"),
            (b"d", self.domain.encode("ascii")),
            (b"s", self.selector.encode("ascii")),
            (b"t", b"%d" % (int(time.time()) if timestamp is None else timestamp)),
            (b"h", b" : ".join(self._include)),
            (b"bh", base64.b64encode(body_hash)),
            # a long placeholder puts b= on its own folded line, as dkimpy does, so the
            # real signature does not move the folding of the tags before it
            (b"b", b"0" * 60),
        ]
        name = b"DKIM-Signature"
        unsigned = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(name))
        unsigned = dkim.RE_BTAG.sub(b"\\1", unsigned)
        digest = hashlib.sha256()
        dkim.hash_headers(
            digest,
            self._policy,
            self._policy.canonicalize_headers(headers),
            self._include,
            (name, b" " + unsigned),
            None,
        )
        signature = self.key.sign(
            digest.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )
        fields[-1] = (b"b", base64.b64encode(signature))
        signed = b"; ".join(b"=".join(f) for f in fields) + b"\r\n"
        return name + b": " + dkim.fold(signed, namelen=len(name), linesep=b"\r\n")


def _read_key(value: str, root: Path) -> bytes:
    if "-----BEGIN" in value:
        # environment variables often carry PEM with literal "\n"
        return (value if "\n" in value else value.replace("\\n", "\n")).encode("ascii")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = root / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"NEWSLETTER_DKIM_KEY: cannot read key file {path} ({exc.strerror})",
            hint="set it to the PEM text or the path of the private key",
        ) from None


def load_dkim_signer(workspace: Workspace) -> DkimSigner | None:
    """The workspace's DKIM signer, or None when NEWSLETTER_DKIM_KEY is unset.

    Raises ConfigError for a bad key, missing [dkim] domain/selector, or a d= that does
    not align with the From domain.
    """
    config = workspace.config
    if not workspace.env.dkim_key:
        if config.dkim.domain:
            log.warning("[dkim] is configured but NEWSLETTER_DKIM_KEY is unset: not signing")
        return None
    signer = DkimSigner(
        _read_key(workspace.env.dkim_key, workspace.root),
        domain=config.dkim.domain,
        selector=config.dkim.selector,
    )
    signer.check_alignment(config.sender.domain)
    return signer


# --- the template -----------------------------------------------------------------------------

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


def _check_ascii_settings(settings: MessageSettings) -> None:
    """ConfigError for addresses or a base URL that cannot go into 7-bit headers."""
    for field_name, value in (
        ("publication.base_url", settings.base_url),
        ("sender.address", settings.from_address),
        ("sender.reply_to", settings.reply_to),
        ("sender.unsubscribe_mailbox", settings.unsubscribe_mailbox),
        ("sender.bounce_address", settings.bounce_address),
    ):
        if (
            not value.isascii()
            or _CONTROL.search(value)
            or (field_name != "publication.base_url" and _ADDRESS_UNSAFE.search(value))
        ):
            raise ConfigError(
                f"newsletter.toml {field_name}: {value!r} cannot be used in a mail header",
                hint="use a plain ASCII address (punycode for international domains)",
            )


def _part(boundary: str, subtype: str, content: str) -> str:
    return (
        f"--{boundary}\r\n"
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n" + content + "\r\n"
    )


def _mark_context(encoded: str, context: str, grammar: SlotGrammar) -> str:
    """Tag each slot token in an encoded part with its part (``%%text:name%%``)."""
    return grammar.pattern.sub(lambda m: f"%%{context}:{m.group(1)}%%", encoded)


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
    the slot grammar of ``settings.secret_keys`` are filled (see ``slots``); ``subject``
    is the editor's, its ``%%name%%`` slots are filled. ``campaign`` a
    short name for the send (the issue slug) used in Message-ID and Feedback-ID;
    ``list_id``/``list_name`` the list sent to (token payload, List-Id). ``test`` marks a
    test send: "[TEST] " subject prefix and an ``X-Newsletter-Test: yes`` header.
    Raises RenderError when either part lacks the unsubscribe slot, ConfigError
    for settings that cannot go into headers or a DKIM domain not aligned with From.
    """
    _check_ascii_settings(settings)
    grammar = SlotGrammar.for_keys(settings.secret_keys)
    for part, content in (("HTML", html_body), ("text", text_body)):
        if UNSUBSCRIBE_SLOT not in grammar.names(content):
            raise RenderError(
                f"the {part} part has no %%{UNSUBSCRIBE_SLOT}%% slot; every message needs an "
                "unsubscribe link in its body",
                hint="write {{ slot('unsubscribe_url') }} in the template footer",
            )
    if not settings.base_url.startswith("https://"):
        log.warning(
            "base URL %s is not https: mail providers ignore a plain http List-Unsubscribe",
            settings.base_url,
        )
    if dkim_signer is not None:
        dkim_signer.check_alignment(settings.domain)
    campaign = _label(campaign, "issue")
    list_label = _label(list_name, "list")
    if test:
        subject = TEST_SUBJECT_PREFIX + subject
    subject_has_slots = bool(grammar.names(grammar.mark(subject)))
    boundary = "=_nl_" + secrets.token_hex(12)  # "=_" never occurs in QP output

    lines = [
        f"Date: %%@{_DATE}%%",
        "From: " + mailbox(settings.from_name, settings.from_address),
    ]
    if settings.reply_to:
        lines.append("Reply-To: " + mailbox("", settings.reply_to))
    lines.append(f"To: %%@{_TO}%%")
    subject_header = f"%%@{_SUBJECT}%%" if subject_has_slots else unstructured_header(subject)
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
    headers = "".join(line + "\r\n" for line in lines)

    text_part = _mark_context(qp_encode_with_slots(text_body, grammar), _CONTEXT_TEXT, grammar)
    html_part = _mark_context(qp_encode_with_slots(html_body, grammar), _CONTEXT_HTML, grammar)
    body = (
        _part(boundary, "plain", text_part)
        + _part(boundary, "html", html_part)
        + f"--{boundary}--\r\n"
    )
    template = MessageTemplate(
        settings=settings,
        headers=headers,
        body=body,
        subject=subject,
        campaign=campaign,
        list_id=list_id,
        campaign_id=campaign_id,
        dkim_signer=dkim_signer,
        grammar=grammar,
    )
    return template
