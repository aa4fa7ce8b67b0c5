"""newsletter.toml validation, environment overrides and workspace discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import Environment, load_config
from newsletter.errors import ConfigError
from newsletter.workspace import find_root, load_workspace

MINIMAL = """
[publication]
name = "Test Times"
base_url = "https://news.example.test/"

[sender]
name = "Test Times"
address = "news@example.test"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_workspace_config_is_valid(workspace_dir: Path) -> None:
    config = load_config(workspace_dir / "newsletter.toml", environ={})
    assert config.publication.name == "The Weekly Brief"
    assert config.sender.domain == "example.org"
    assert config.compose.summary_min_words == 40


def test_minimal_config_gets_defaults_and_trailing_slash_removed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    assert config.publication.base_url == "https://news.example.test"
    assert config.send.connections == 4
    assert config.serve.missed_window_hours == 6


def test_an_ignored_setting_is_still_accepted(tmp_path: Path) -> None:
    text = MINIMAL + "\n[send]\nrecipients_per_transaction = 50\n"
    assert load_config(write(tmp_path, text), environ={}).send.connections == 4


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = """
[publication]
name = ""
base_url = "ftp://nope"
timezone = "Mars/Olympus"

[sender]
name = "X"
address = "not-an-address"
colour = "red"

[send]
connections = 0
"""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    message = str(info.value)
    assert str(tmp_path / "newsletter.toml") in message
    for field in (
        "publication.name",
        "publication.base_url",
        "publication.timezone",
        "sender.address",
        "sender.colour",
        "send.connections",
    ):
        assert field in message, field
    assert "\n" not in message


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid TOML.*line 2"):
        load_config(write(tmp_path, "[publication]\nname = \n"), environ={})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "newsletter.toml", environ={})


def test_base_url_from_environment_wins(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    config = load_config(path, environ={"NEWSLETTER_BASE_URL": "https://elsewhere.test/x/"})
    assert config.publication.base_url == "https://elsewhere.test/x"


def test_environment_secret_keys_newest_first() -> None:
    env = Environment.from_environ({"NEWSLETTER_SECRET_KEY": " new , old ,"})
    assert env.secret_keys == ("new", "old")
    assert Environment.from_environ({}).smtp_url is None


def test_find_root_walks_up(workspace_dir: Path) -> None:
    nested = workspace_dir / "issues" / "deep"
    nested.mkdir(parents=True)
    assert find_root(nested) == workspace_dir.resolve()


def test_find_root_outside_workspace(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no newsletter\.toml"):
        find_root(tmp_path)


def test_database_url_defaults_to_sqlite_in_subscribers(workspace_dir: Path) -> None:
    ws = load_workspace(workspace_dir, environ={})
    assert (
        ws.database_url == f"sqlite:///{workspace_dir.resolve() / 'subscribers' / 'newsletter.db'}"
    )
    other = load_workspace(workspace_dir, environ={"NEWSLETTER_DATABASE_URL": "sqlite:///x.db"})
    assert other.database_url == "sqlite:///x.db"


def test_generated_secret_key_is_stable(workspace_dir: Path) -> None:
    ws = load_workspace(workspace_dir, environ={})
    first = ws.secret_keys()
    assert first == ws.secret_keys()
    assert len(first[0]) >= 32
    assert (workspace_dir / "subscribers" / ".secret_key").stat().st_mode & 0o077 == 0


def test_environment_secret_key_used(workspace_dir: Path) -> None:
    ws = load_workspace(workspace_dir, environ={"NEWSLETTER_SECRET_KEY": "a,b"})
    assert ws.secret_keys() == ("a", "b")
    assert not (workspace_dir / "subscribers" / ".secret_key").exists()


def test_bad_base_url_from_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL), environ={"NEWSLETTER_BASE_URL": "notaurl"})
    assert "NEWSLETTER_BASE_URL (replaces publication.base_url)" in str(info.value)
