"""DKIM: sign each personalised message with the workspace's RSA key.

``DkimSigner`` signs each personalised message (the body differs per recipient, so the
body hash does too) with ``c=relaxed/simple`` and an explicit header list that includes
List-Unsubscribe-Post. Header selection, canonicalisation, hashing and folding are
dkimpy's own functions; only the RSA operation goes to OpenSSL through ``cryptography``.
Tests verify every signature with ``dkim.verify`` on the exact bytes the SMTP server
received.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.errors import ConfigError
from newsletter.mail.headers import TEST_HEADER
from newsletter.workspace import Workspace

# dkimpy (which imports dnspython) and cryptography are imported by DkimSigner only, so a
# send without NEWSLETTER_DKIM_KEY never loads them.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger(__name__)

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
        # OpenSSL RSA, not dkim.sign's pure-Python one, which would cap a signed send's speed
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
