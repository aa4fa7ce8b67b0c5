"""parse_smtp_url and smtp_settings: the URL forms, TLS policy, and what is refused."""

from __future__ import annotations

import pytest

from newsletter.errors import ConfigError
from newsletter.smtp.settings import (
    TLS_IMPLICIT,
    TLS_NONE,
    TLS_STARTTLS,
    parse_smtp_url,
    smtp_settings,
)
from newsletter.workspace import Workspace


def test_url_security_defaults() -> None:
    remote = parse_smtp_url("smtp://news:pw@mail.example.org")
    assert (remote.security, remote.port) == (TLS_STARTTLS, 587)
    assert parse_smtp_url("smtp://mail.example.org:587").security == TLS_STARTTLS
    secure = parse_smtp_url("smtps://news:pw@mail.example.org")
    assert (secure.security, secure.port) == (TLS_IMPLICIT, 465)
    relay = parse_smtp_url("smtp://localhost")
    assert (relay.security, relay.port) == (TLS_NONE, 25)
    assert parse_smtp_url("smtp://127.0.0.1:2525").security == TLS_NONE
    assert parse_smtp_url("smtp://[::1]:25").security == TLS_NONE
    assert parse_smtp_url("smtp://u:p@127.0.0.1:2525").security == TLS_STARTTLS
    assert "pw" not in repr(remote) and remote.display == "smtp://news@mail.example.org:587"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.org", "smtp://"),
        ("smtp://", "smtp://"),
        ("smtp://mail.example.org:99999", "not a valid URL"),
        ("smtp://mail.example.org?tls=none", "plain SMTP to a remote host"),
        ("smtp://u:secret@127.0.0.1?tls=none", "unencrypted"),
        ("smtp://mail.example.org?tls=maybe", "tls must be"),
        ("smtp://mail.example.org?verify=no", "unknown option"),
    ],
)
def test_bad_smtp_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_smtp_url(url)
    assert "secret" not in str(info.value)


def test_allow_insecure_permits_plain_smtp_to_a_remote_host() -> None:
    settings = parse_smtp_url("smtp://relay.example.org?tls=none", allow_insecure=True)
    assert settings.security == TLS_NONE


def test_settings_from_the_workspace(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    assert smtp_settings(workspace) is None  # no URL: the embedded server is used
    settings = smtp_settings(workspace, "smtps://u:p@mail.example.org")
    assert settings is not None
    assert settings.messages_per_connection == workspace.config.send.messages_per_connection
    assert settings.timeout == workspace.config.send.timeout_seconds
