"""mail/dkim.py: signatures that verify on the exact bytes sent, keys and alignment."""

from __future__ import annotations

import logging
from pathlib import Path

import dkim
import pytest
from mail_samples import (
    DKIM_DIR,
    dns_stub,
    parse,
    signer,
    template,
)

from newsletter.errors import ConfigError
from newsletter.mail.dkim import DkimSigner, load_dkim_signer
from newsletter.store.records import Recipient
from newsletter.workspace import load_workspace


def test_dkim_covers_list_unsubscribe_and_verifies_on_the_exact_bytes() -> None:
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
def test_any_change_to_signed_bytes_breaks_the_signature(old: bytes, new: bytes) -> None:
    data = template(dkim_signer=signer()).personalise(Recipient(42, "ana@example.net"))
    assert old in data
    assert not dkim.verify(data.replace(old, new, 1), dnsfunc=dns_stub("test-only-rsa2048.dns.txt"))


def test_keys_under_1024_bits_are_refused() -> None:
    with pytest.raises(ConfigError, match="512 bits"):
        signer(512)


def test_1024_bit_key_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="newsletter.mail.dkim"):
        small = signer(1024)
    assert "1024 bits" in caplog.text
    data = template(dkim_signer=small).personalise(Recipient(1, "a@example.net"))
    assert dkim.verify(data, dnsfunc=dns_stub("test-only-rsa1024.dns.txt"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="newsletter.mail.dkim"):
        signer(2048)
    assert caplog.text == ""


def test_dkim_domain_must_align_with_the_from_domain() -> None:
    signer(domain="example.org").check_alignment("harbour.example.org")  # a parent: aligned
    signer(domain="harbour.example.org").check_alignment("HARBOUR.example.org")
    with pytest.raises(ConfigError, match="DMARC"):
        signer(domain="other.example").check_alignment("harbour.example.org")
    with pytest.raises(ConfigError, match="DMARC"):
        signer(domain="mail.harbour.example.org").check_alignment("harbour.example.org")
    with pytest.raises(ConfigError, match="DMARC"):
        template(dkim_signer=signer(domain="badharbour.example.org"))


def test_unreadable_or_non_rsa_keys_are_config_errors() -> None:
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


def test_feedback_id_is_constant_has_no_per_message_value_and_is_signed() -> None:
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


def _with_dkim_section(workspace_dir: Path, domain: str = "example.org") -> None:
    config = workspace_dir / "newsletter.toml"
    original = config.read_text(encoding="utf-8").split("\n[dkim]\n")[0]
    section = f'\n[dkim]\ndomain = "{domain}"\nselector = "news2026"\n'
    config.write_text(original + section, encoding="utf-8")


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
