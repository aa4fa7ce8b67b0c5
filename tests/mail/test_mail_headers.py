"""mail/headers.py and mail/settings.py: header values and settings fit for 7-bit headers."""

from __future__ import annotations

import re

import pytest
from mail_samples import (
    HTML,
    TEXT,
    parse,
    settings,
    template,
)

from newsletter.errors import ConfigError
from newsletter.mail.dkim import load_dkim_signer
from newsletter.mail.headers import encoded_words
from newsletter.mail.settings import MessageSettings
from newsletter.mail.template import build_template
from newsletter.store.records import Recipient
from newsletter.workspace import Workspace


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


def test_encoded_words_stay_under_75_chars() -> None:
    words = encoded_words("Ünicode " * 50)
    assert all(len(word) <= 75 for word in words)


def test_bad_recipient_address_is_a_caller_bug() -> None:
    for address in ("a b@example.net", "a@example.net>", "x\r\n@example.net", ""):
        with pytest.raises(ValueError):
            template().personalise(Recipient(1, address))


def test_list_id_names_the_publication_and_list() -> None:
    message = parse(template().personalise(Recipient(1, "a@example.net")))
    assert str(message["List-Id"]) == "The Harbour Letter <main.harbour.example.org>"


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


def test_settings_from_the_sample_workspace(workspace: Workspace) -> None:
    loaded = MessageSettings.from_workspace(workspace)
    assert loaded.from_address == "brief@example.org"
    assert loaded.base_url == "https://brief.example.org"
    assert loaded.envelope_base == "bounces@example.org"
    assert loaded.secret_keys == ("test-key-not-secret",)
    assert load_dkim_signer(workspace) is None
