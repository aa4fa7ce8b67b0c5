"""Unsubscribe endpoint: GET-safe page, one-click POST, bad tokens, rotation, no redirects.

On the real starlette app (TestClient runs it in-process over ASGI) with a real SQLite file.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine
from itsdangerous import URLSafeSerializer
from starlette.testclient import TestClient

from newsletter.errors import RenderError
from newsletter.mail.tokens import (
    UNSUBSCRIBE_SALT,
    make_confirm_token,
    make_unsubscribe_token,
)
from newsletter.store import Consent, Store, open_store, open_store_for
from newsletter.web import create_app
from newsletter.workspace import Workspace, load_workspace

ADDRESS = "ann.reader@example.org"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


class FakeClock:
    """Monotonic seconds the test moves by hand (for the rate limiter only)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    with open_store_for(workspace) as opened:
        yield opened


@pytest.fixture
def member(store: Store) -> tuple[int, int]:
    """Ann, an active member of "main" -> (subscriber id, list id)."""
    store.add(ADDRESS, list_name="main", consent=Consent(source="cli"), name="Ann Reader")
    subscriber = store.get_by_email(ADDRESS)
    list_id = store.list_id("main")
    assert subscriber is not None and list_id is not None
    return subscriber.id, list_id


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(workspace: Workspace, store: Store, clock: FakeClock) -> Iterator[TestClient]:
    app = create_app(workspace, store, clock=clock)
    with TestClient(app, follow_redirects=False, client=("198.51.100.7", 40000)) as test_client:
        yield test_client


def _token(workspace: Workspace, member: tuple[int, int], campaign: int | None = 9) -> str:
    return make_unsubscribe_token(workspace.secret_keys(), member[0], member[1], campaign)


def _consents(store: Store, action: str) -> list[dict[str, object]]:
    data = store.describe(ADDRESS)
    assert data is not None
    return [c for c in data["consents"] if c["action"] == action]


def _assert_no_redirect_or_cookie(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert not 300 <= response.status_code < 400  # type: ignore[attr-defined]
    assert "location" not in headers
    assert "set-cookie" not in headers


# --- GET and HEAD change nothing ----------------------------------------------------------


def test_get_and_head_any_number_of_times_leave_the_subscriber_subscribed(
    client: TestClient, store: Store, workspace: Workspace, member: tuple[int, int]
) -> None:
    url = f"/u/{_token(workspace, member)}"
    for _ in range(5):
        page = client.get(url)
        head = client.head(url)
        assert page.status_code == head.status_code == 200
        _assert_no_redirect_or_cookie(page)
    assert '<form method="post">' in page.text  # no action: it posts to this same URL
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert "Unsubscribe" in page.text and "a•••@example.org" in page.text
    assert ADDRESS not in page.text  # a forwarded message does not expose the address
    assert store.is_sendable(member[0], "main")
    assert _consents(store, "unsubscribe") == []


def test_the_confirmation_page_form_posts_and_unsubscribes(
    client: TestClient, store: Store, workspace: Workspace, member: tuple[int, int]
) -> None:
    url = f"/u/{_token(workspace, member)}"
    assert client.get(url).status_code == 200
    # what the page's button sends
    answer = client.post(url, data={"List-Unsubscribe": "One-Click", "via": "page"})
    assert answer.status_code == 200
    assert "You are unsubscribed" in answer.text
    assert not store.is_sendable(member[0], "main")
    [event] = _consents(store, "unsubscribe")
    assert event["detail"] == {"via": "page", "campaign_id": 9}


# --- one-click POST, urlencoded and multipart -------------------------------------------


def test_one_click_post_urlencoded_unsubscribes_with_200_no_location_no_cookie(
    client: TestClient, store: Store, workspace: Workspace, member: tuple[int, int]
) -> None:
    answer = client.post(
        f"/u/{_token(workspace, member)}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded", "user-agent": "GmailBot"},
    )
    assert answer.status_code == 200
    _assert_no_redirect_or_cookie(answer)
    assert not store.is_sendable(member[0], "main")
    assert [r.email for r in store.iter_recipients("main")] == []
    [event] = _consents(store, "unsubscribe")
    assert event["source"] == "web"
    assert event["ip"] == "198.51.100.7"
    assert event["user_agent"] == "GmailBot"
    assert event["detail"] == {"via": "one-click", "campaign_id": 9}


def test_one_click_post_multipart_unsubscribes(
    client: TestClient, store: Store, workspace: Workspace, member: tuple[int, int]
) -> None:
    answer = client.post(
        f"/u/{_token(workspace, member)}", files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert answer.request.headers["content-type"].startswith("multipart/form-data")
    assert answer.status_code == 200
    _assert_no_redirect_or_cookie(answer)
    assert not store.is_sendable(member[0], "main")
    [event] = _consents(store, "unsubscribe")
    assert event["detail"] == {"via": "one-click", "campaign_id": 9}


def test_a_malformed_body_still_unsubscribes_since_the_url_is_the_credential(
    client: TestClient, store: Store, workspace: Workspace, member: tuple[int, int]
) -> None:
    answer = client.post(
        f"/u/{_token(workspace, member)}",
        content=b"--broken\r\nnot multipart at all",
        headers={"content-type": "multipart/form-data; boundary=nothing-matches"},
    )
    assert answer.status_code == 200
    assert not store.is_sendable(member[0], "main")


def test_an_oversized_body_is_refused_before_anything_changes(
    client: TestClient, store: Store, workspace: Workspace, member: tuple[int, int]
) -> None:
    answer = client.post(
        f"/u/{_token(workspace, member)}",
        content=b"List-Unsubscribe=One-Click&pad=" + b"x" * 200_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413
    assert store.is_sendable(member[0], "main")


# --- repeating is harmless -------------------------------------------------------------


def test_repeated_one_click_posts_answer_200_and_record_exactly_one_event(
    client: TestClient, store: Store, workspace: Workspace, member: tuple[int, int]
) -> None:
    url = f"/u/{_token(workspace, member)}"
    bodies = set()
    for _ in range(4):
        answer = client.post(url, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200
        bodies.add(answer.text)
    assert len(bodies) == 1
    assert len(_consents(store, "unsubscribe")) == 1
    # and the page now says so, still offering the (harmless) button
    page = client.get(url)
    assert page.status_code == 200 and "already unsubscribed" in page.text


# --- committed before the answer --------------------------------------------------------


def test_the_unsubscribe_is_committed_before_the_answer_arrives(
    client: TestClient, workspace: Workspace, member: tuple[int, int]
) -> None:
    answer = client.post(f"/u/{_token(workspace, member)}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    # a separate engine (as a sending process would have) sees it at once
    with open_store(workspace.database_url) as other:
        assert not other.is_sendable(member[0], "main")
        assert other.sendable_ids([member[0]], "main") == set()


# --- bad tokens -------------------------------------------------------------------------


def _with_payload(token: str, payload: list[int]) -> str:
    """``token``'s signature on a different payload (what an attacker would try)."""
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    return body.rstrip(b"=").decode() + "." + token.split(".", 1)[1]


def test_unknown_tampered_truncated_and_wrong_list_tokens_all_get_the_same_answer(
    client: TestClient, store: Store, workspace: Workspace, member: tuple[int, int]
) -> None:
    keys = workspace.secret_keys()
    store.ensure_list("other")  # a real list Ann is not on
    other_list = store.list_id("other")
    assert other_list is not None
    good = _token(workspace, member)
    flipped = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
    bad_tokens = {
        "tampered signature": flipped,
        "truncated": good[: len(good) // 2],
        "forged with another key": URLSafeSerializer("attacker", salt=UNSUBSCRIBE_SALT).dumps(
            [member[0], member[1]]
        ),
        "subscriber id changed": _with_payload(good, [member[0] + 1, member[1], 9]),
        "list id changed": _with_payload(good, [member[0], member[1] + 1, 9]),
        "unknown subscriber": make_unsubscribe_token(keys, 999_999, member[1]),
        "unknown list": make_unsubscribe_token(keys, member[0], 424_242),
        "wrong list": make_unsubscribe_token(keys, member[0], other_list),
        "confirm token": make_confirm_token(keys, member[0], member[1]),
        "garbage": "not-a-token",
        "overlong": "x" * 5000,
    }
    answers = {}
    for label, token in bad_tokens.items():
        for method in ("GET", "POST"):
            body = ONE_CLICK if method == "POST" else None
            answer = client.request(method, f"/u/{token}", data=body)
            _assert_no_redirect_or_cookie(answer)
            answers[(label, method)] = (answer.status_code, answer.content)
    assert {status for status, _ in answers.values()} == {404}
    assert len({body for _, body in answers.values()}) == 1, "every refusal must be identical"
    body = next(iter(answers.values()))[1].decode()
    assert "not valid" in body and "Traceback" not in body and ADDRESS not in body
    # nothing changed
    assert store.is_sendable(member[0], "main")
    assert _consents(store, "unsubscribe") == []


def test_the_token_in_the_link_carries_no_address(
    workspace: Workspace, member: tuple[int, int]
) -> None:
    token = _token(workspace, member)
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert json.loads(payload) == [member[0], member[1], 9]
    assert b"@" not in payload and b"ann" not in payload.lower()


# --- old links keep working -------------------------------------------------------------


def test_a_link_signed_with_a_rotated_out_key_still_unsubscribes(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "key-2025")
    old = load_workspace(workspace_dir)
    with open_store_for(old) as store:
        store.add(ADDRESS, list_name="main", consent=Consent(source="cli"))
        subscriber, list_id = store.get_by_email(ADDRESS), store.list_id("main")
        assert subscriber is not None and list_id is not None
        token = make_unsubscribe_token(old.secret_keys(), subscriber.id, list_id)
        # rotation: a new key signs, the old one is kept second to verify
        monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "key-2026,key-2025")
        rotated = load_workspace(workspace_dir)
        assert rotated.secret_keys() == ("key-2026", "key-2025")
        with TestClient(create_app(rotated, store), follow_redirects=False) as client:
            assert client.get(f"/u/{token}").status_code == 200
            assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 200
        assert not store.is_sendable(subscriber.id, "main")
        # once the old key is dropped entirely, its links stop working (same refusal)
        monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "key-2026")
        dropped = load_workspace(workspace_dir)
        with TestClient(create_app(dropped, store), follow_redirects=False) as client:
            assert client.get(f"/u/{token}").status_code == 404


def test_a_link_from_a_message_sent_40_days_ago_still_unsubscribes(
    workspace: Workspace, store: Store, member: tuple[int, int]
) -> None:
    sent = datetime.now(UTC) - timedelta(days=40)
    with time_machine.travel(sent, tick=False):
        token = _token(workspace, member)
    with TestClient(create_app(workspace, store), follow_redirects=False) as client:
        answer = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert not store.is_sendable(member[0], "main")


# --- no redirects anywhere --------------------------------------------------------------


def test_no_endpoint_ever_redirects(
    client: TestClient, workspace: Workspace, member: tuple[int, int]
) -> None:
    keys = workspace.secret_keys()
    token = _token(workspace, member)
    confirm = make_confirm_token(keys, member[0], member[1])
    evil = "?next=https://evil.example.net/&redirect=https://evil.example.net/"
    paths = [
        f"/u/{token}",
        f"/u/{token}/",
        f"/u/{token}{evil}",
        f"/c/{confirm}",
        f"/c/{confirm}/",
        f"/c/{confirm}{evil}",
        "/subscribe",
        "/subscribe/",
        f"/subscribe{evil}",
        "/u/",
        "/",
        "/healthz",
    ]
    for path in paths:
        for method in ("GET", "HEAD", "POST"):
            body = {"email": "x@example.org"} if method == "POST" else None
            answer = client.request(method, path, data=body)
            _assert_no_redirect_or_cookie(answer)
            assert "evil.example.net" not in answer.text


# --- pages, headers, failures -----------------------------------------------------------


def test_pages_carry_no_store_no_referrer_and_a_strict_policy(
    client: TestClient, workspace: Workspace, member: tuple[int, int]
) -> None:
    page = client.get(f"/u/{_token(workspace, member)}")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["content-type"].startswith("text/html")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert workspace.config.publication.accent_color in page.text
    assert workspace.config.publication.postal_address in page.text


def test_invalid_tokens_from_one_client_are_rate_limited(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    config = workspace_dir / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    assert "\n[serve]\n" in text
    config.write_text(  # into [serve], wherever it sits in the file
        text.replace("\n[serve]\n", "\n[serve]\ninvalid_token_limit_per_minute = 3\n", 1),
        encoding="utf-8",
    )
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k")
    ws = load_workspace(workspace_dir)
    assert ws.config.serve.invalid_token_limit_per_minute == 3
    with open_store_for(ws) as store:
        store.add(ADDRESS, list_name="main", consent=Consent(source="cli"))
        subscriber, list_id = store.get_by_email(ADDRESS), store.list_id("main")
        assert subscriber is not None and list_id is not None
        good = make_unsubscribe_token(ws.secret_keys(), subscriber.id, list_id)
        app = create_app(ws, store, clock=clock)
        with (
            TestClient(app, follow_redirects=False, client=("203.0.113.9", 1)) as guesser,
            TestClient(app, follow_redirects=False, client=("203.0.113.10", 1)) as reader,
        ):
            for attempt in range(3):
                assert guesser.get(f"/u/guess-{attempt}").status_code == 404
            blocked = guesser.get("/u/guess-4")
            assert blocked.status_code == 429
            assert int(blocked.headers["retry-after"]) <= 60
            # while blocked, even a good token answers 429: the refusal reveals nothing
            assert guesser.get(f"/u/{good}").status_code == 429
            assert guesser.post(f"/c/{good}").status_code == 429
            # another client is not affected
            assert reader.get(f"/u/{good}").status_code == 200
            # valid requests never count: a reader can open their link any number of times
            for _ in range(10):
                assert reader.get(f"/u/{good}").status_code == 200
            clock.now += 61
            assert guesser.get(f"/u/{good}").status_code == 200
        assert store.is_sendable(subscriber.id, "main")


def test_a_server_error_shows_the_error_page_not_a_traceback(
    workspace: Workspace, store: Store, member: tuple[int, int]
) -> None:
    token = _token(workspace, member)
    with store.write() as conn:  # a real database fault: the table is gone
        conn.exec_driver_sql("DROP TABLE consents")
    app = create_app(workspace, store)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        answer = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 500
    assert "Something went wrong" in answer.text
    assert "Traceback" not in answer.text and "consents" not in answer.text


def test_unknown_paths_and_methods_get_the_error_page(client: TestClient) -> None:
    missing = client.get("/wp-login.php")
    assert missing.status_code == 404 and "no page at this address" in missing.text
    wrong = client.put("/subscribe")
    assert wrong.status_code == 405 and "Something went wrong" in wrong.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/subscribe", {"GET", "HEAD", "POST"}),
        ("DELETE", "/u/some.token", {"GET", "HEAD", "POST"}),
        ("PATCH", "/c/some.token", {"GET", "HEAD", "POST"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("PUT", "/brief/subscribe", {"GET", "HEAD", "POST"}),
    ],
)
def test_a_405_names_every_method_the_address_answers(
    workspace_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    allowed: set[str],
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-key-not-secret")
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://example.org/brief")
    with (
        open_store_for(load_workspace(workspace_dir)) as store,
        TestClient(create_app(load_workspace(workspace_dir), store)) as client,
    ):
        answer = client.request(method, path)
    assert answer.status_code == 405
    assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed


def test_health_answers_ok(client: TestClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.text == "ok"


def test_a_workspace_page_template_overrides_the_packaged_one(
    workspace: Workspace, store: Store, member: tuple[int, int]
) -> None:
    pages = workspace.templates_dir / "pages"
    pages.mkdir(parents=True, exist_ok=True)
    (pages / "unsubscribed.html.j2").write_text(
        '{% extends "pages/base.html.j2" %}{% block title %}Bye{% endblock %}'
        "{% block content %}<h1>Sorry to see you go, {{ email|mask }}</h1>{% endblock %}",
        encoding="utf-8",
    )
    with TestClient(create_app(workspace, store)) as client:
        answer = client.post(f"/u/{_token(workspace, member)}")
    assert "Sorry to see you go, a•••@example.org" in answer.text


def test_a_broken_page_override_fails_at_start_naming_the_file(
    workspace: Workspace, store: Store
) -> None:
    pages = workspace.templates_dir / "pages"
    pages.mkdir(parents=True, exist_ok=True)
    (pages / "invalid_link.html.j2").write_text(
        '{% extends "pages/base.html.j2" %}\n{% block content %}\n{{ nope.nothing }}\n'
        "{% endblock %}\n",
        encoding="utf-8",
    )
    with pytest.raises(RenderError) as info:
        create_app(workspace, store)
    assert "templates/pages/invalid_link.html.j2" in str(info.value)


def test_routes_also_answer_under_the_base_url_path(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k")
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://example.org/letters")
    ws = load_workspace(workspace_dir)
    with open_store_for(ws) as store:
        store.add(ADDRESS, list_name="main", consent=Consent(source="cli"))
        subscriber, list_id = store.get_by_email(ADDRESS), store.list_id("main")
        assert subscriber is not None and list_id is not None
        token = make_unsubscribe_token(ws.secret_keys(), subscriber.id, list_id)
        with TestClient(create_app(ws, store), follow_redirects=False) as client:
            assert client.get(f"/letters/u/{token}").status_code == 200  # proxy passes the path
            assert client.get(f"/u/{token}").status_code == 200  # proxy strips it
            assert client.post(f"/letters/u/{token}").status_code == 200
        assert not store.is_sendable(subscriber.id, "main")


def test_a_test_copys_link_says_so_and_changes_nothing(
    client: TestClient, store: Store, workspace: Workspace, member: tuple[int, int]
) -> None:
    """The link in a real `send --test` copy (taken from the message the embedded server
    stored) gets a page naming it a test copy, not the bad-link 404, and counts as no guess."""
    from ledger_server import write_issue
    from newsletter.deliver import send_test

    issue = write_issue(workspace.root)
    assert send_test(workspace, issue, [ADDRESS]).sent == 1
    (stored,) = (workspace.root / "outbox").glob("*.eml")
    message = email.message_from_bytes(stored.read_bytes(), policy=email.policy.default)
    link = str(message["List-Unsubscribe"]).split("<", 1)[1].split(">", 1)[0]
    path = urlsplit(link).path
    assert path.startswith("/u/")

    limit = workspace.config.serve.invalid_token_limit_per_minute
    for _ in range(limit + 1):  # never a guess: no 429 however often it is opened
        page = client.get(path)
        assert page.status_code == 200
    assert "This link is from a test copy" in page.text and "nothing was changed" in page.text
    assert "<form" not in page.text
    one_click = client.post(path, data=ONE_CLICK)
    assert one_click.status_code == 200 and "test copy" in one_click.text
    invalid = client.get("/u/not-a-token")
    assert invalid.status_code == 404 and "not valid" in invalid.text
    assert store.is_sendable(member[0], "main")
    assert _consents(store, "unsubscribe") == []


def test_every_request_gets_an_access_line_without_its_token(
    workspace: Workspace,
    store: Store,
    member: tuple[int, int],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = _token(workspace, member)
    caplog.set_level("INFO", logger="newsletter.web")
    client = TestClient(
        create_app(workspace, store),
        raise_server_exceptions=False,
        client=("198.51.100.7", 40000),
    )
    client.get(f"/u/{token}?utm=x")
    client.post(f"/u/{token}", data=ONE_CLICK)
    client.get("/c/not.a.token")
    client.get("/healthz")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "list_members", broken)
    client.get(f"/u/{token}")
    lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.web.access"]
    assert [line.rsplit(" ", 3)[0] for line in lines] == [
        "GET /u/<token> 200",
        "POST /u/<token> 200",
        "GET /c/<token> 404",
        "GET /healthz 200",
        "GET /u/<token> 500",
    ]
    assert all(line.endswith(" ms 198.51.100.7") for line in lines)
    assert not any(token in r.getMessage() or "utm" in r.getMessage() for r in caplog.records)
    assert any("error answering GET /u/<token>" in r.getMessage() for r in caplog.records)
