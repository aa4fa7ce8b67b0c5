"""The sign-up form's optional proof-of-work challenge (serve.form_challenge).

The solutions are computed here with hashlib, independently of the code under test, at a
low difficulty so the search takes milliseconds.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from itsdangerous import URLSafeTimedSerializer
from starlette.testclient import TestClient

from newsletter.errors import ConfigError, RenderError
from newsletter.store import Store, open_store_for
from newsletter.web import create_app
from newsletter.web.challenge import SALT, leading_zero_bits
from newsletter.workspace import Workspace, load_workspace

BITS = 8
OWN_PAGE = {"origin": "https://brief.example.org"}
KEY = "test-key-not-secret"


def _configure(workspace_dir: Path, settings: str) -> None:
    config = workspace_dir / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[serve]\n", f"[serve]\n{settings}\n"), encoding="utf-8")


@pytest.fixture
def guarded(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The sample workspace with the proof-of-work challenge on at BITS bits."""
    _configure(workspace_dir, f'form_challenge = "proof-of-work"\nform_challenge_bits = {BITS}')
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    return load_workspace(workspace_dir)


@pytest.fixture
def store(guarded: Workspace) -> Iterator[Store]:
    with open_store_for(guarded) as opened:
        yield opened


@pytest.fixture
def client(guarded: Workspace, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(guarded, store), client=("192.0.2.44", 51000)) as test_client:
        yield test_client


def _zero_bits(challenge: str, answer: str) -> int:
    value = int.from_bytes(hashlib.sha256(f"{challenge}:{answer}".encode()).digest(), "big")
    return 256 - value.bit_length()


def _solve(challenge: str, bits: int = BITS) -> str:
    return next(str(n) for n in itertools.count() if _zero_bits(challenge, str(n)) >= bits)


def _challenge(client: TestClient) -> str:
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert f'data-challenge-bits="{BITS}"' in page.text
    found = re.search(r'name="challenge" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def _post(client: TestClient, address: str, **fields: str) -> str:
    answer = client.post(
        "/subscribe", data={"email": address, "list": "main", **fields}, headers=OWN_PAGE
    )
    assert answer.status_code == 200
    return answer.text.replace(address, "X")


def _solved(client: TestClient) -> dict[str, str]:
    challenge = _challenge(client)
    return {"challenge": challenge, "challenge_answer": _solve(challenge)}


def test_a_solved_challenge_signs_up_once(client: TestClient, store: Store) -> None:
    solved = _solved(client)
    accepted = _post(client, "first@example.org", **solved)
    assert store.get_by_email("first@example.org") is not None
    # the same solution again: the same answer page, and nothing happens
    replayed = _post(client, "second@example.org", **solved)
    assert replayed == accepted
    assert store.get_by_email("second@example.org") is None
    # a fresh challenge from a fresh page works
    _post(client, "second@example.org", **_solved(client))
    assert store.get_by_email("second@example.org") is not None


def test_a_missing_forged_or_too_easy_solution_answers_the_same_and_does_nothing(
    client: TestClient, store: Store
) -> None:
    good = _post(client, "good@example.org", **_solved(client))
    challenge = _challenge(client)
    too_easy = next(str(n) for n in itertools.count() if _zero_bits(challenge, str(n)) == BITS - 1)
    forged = str(URLSafeTimedSerializer("another key", salt=SALT).dumps("a" * 32))
    tampered = challenge[:-3] + ("AAA" if not challenge.endswith("AAA") else "BBB")
    attempts = {
        "none@example.org": {},
        "no-answer@example.org": {"challenge": challenge},
        "empty@example.org": {"challenge": challenge, "challenge_answer": ""},
        "easy@example.org": {"challenge": challenge, "challenge_answer": too_easy},
        "forged@example.org": {"challenge": forged, "challenge_answer": _solve(forged)},
        "tampered@example.org": {"challenge": tampered, "challenge_answer": _solve(tampered)},
        "letters@example.org": {"challenge": challenge, "challenge_answer": "0x1f"},
    }
    for address, fields in attempts.items():
        assert _post(client, address, **fields) == good, address
        assert store.get_by_email(address) is None, address


def test_a_challenge_expires_after_an_hour(client: TestClient, store: Store) -> None:
    start = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        kept, stale = _solved(client), _solved(client)
        traveller.shift(timedelta(minutes=59))
        _post(client, "in-time@example.org", **kept)
        traveller.shift(timedelta(minutes=2))
        _post(client, "too-late@example.org", **stale)
    assert store.get_by_email("in-time@example.org") is not None
    assert store.get_by_email("too-late@example.org") is None


def test_the_form_page_carries_the_challenge_and_its_self_hosted_script(
    client: TestClient,
) -> None:
    page = client.get("/subscribe")
    assert 'name="challenge_answer"' in page.text
    assert '<script src="challenge.js" defer></script>' in page.text
    assert "This form needs JavaScript" in page.text  # in <noscript>
    assert re.search(r'<button type="submit" disabled>', page.text)
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    # every page has a new challenge
    assert _challenge(client) != _challenge(client)
    script = client.get("/challenge.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "crypto.subtle.digest" in script.text
    # no address outside this server: the script calls nothing else
    assert not re.search(r"https?://", script.text)


def test_without_the_setting_the_form_has_no_challenge_and_needs_none(
    workspace: Workspace,
) -> None:
    with open_store_for(workspace) as store, TestClient(create_app(workspace, store)) as client:
        page = client.get("/subscribe")
        assert "challenge" not in page.text and "<script" not in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        _post(client, "plain@example.org")
        assert store.get_by_email("plain@example.org") is not None


def test_the_setting_takes_only_known_values(workspace_dir: Path) -> None:
    _configure(workspace_dir, 'form_challenge = "captcha"')
    with pytest.raises(ConfigError, match=r"serve\.form_challenge"):
        load_workspace(workspace_dir)


def test_an_old_form_page_override_without_the_challenge_fails_at_start(
    guarded: Workspace,
) -> None:
    override = guarded.templates_dir / "pages" / "subscribe.html.j2"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text(
        '{% extends "pages/base.html.j2" %}{% block content %}'
        '<form method="post"><input name="email"><button>Go</button></form>{% endblock %}',
        encoding="utf-8",
    )
    with (
        open_store_for(guarded) as store,
        pytest.raises(RenderError, match=r"subscribe\.html\.j2 has no form challenge"),
    ):
        create_app(guarded, store)


@pytest.mark.parametrize(
    ("digest", "bits"),
    [(b"\xff" + bytes(31), 0), (b"\x00\x01" + bytes(30), 15), (b"\x00\x80", 8), (bytes(32), 256)],
)
def test_leading_zero_bits(digest: bytes, bits: int) -> None:
    assert leading_zero_bits(digest) == bits
