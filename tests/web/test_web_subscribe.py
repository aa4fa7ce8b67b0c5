"""Double opt-in: POST /subscribe -> pending + confirmation mail -> GET-safe confirm page
-> POST confirm -> active + consent record + welcome mail (the web side).

The messages go through the real SMTP client to the embedded aiosmtpd server, which
stores them in the workspace's outbox/ (no NEWSLETTER_SMTP_URL), or to a separate
aiosmtpd server named by NEWSLETTER_SMTP_URL.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
import time_machine
from starlette.testclient import TestClient

from newsletter.mail.tokens import make_confirm_token
from newsletter.mail.verp import decode_verp
from newsletter.smtp.embedded import EmbeddedServer, outbox_dir
from newsletter.store import Consent, Store, open_store_for
from newsletter.web import create_app
from newsletter.workspace import Workspace, load_workspace

NEW = "new.reader@example.org"
CONFIRM_LINK = re.compile(r"https://brief\.example\.org(/c/[A-Za-z0-9_.-]+)")
BROWSER = "Mozilla/5.0 (Android 14; Mobile) Firefox/140.0"


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    with open_store_for(workspace) as opened:
        yield opened


@pytest.fixture
def client(workspace: Workspace, store: Store) -> Iterator[TestClient]:
    app = create_app(workspace, store)
    with TestClient(
        app,
        follow_redirects=False,
        client=("192.0.2.44", 51000),
        headers={"user-agent": BROWSER},
    ) as test_client:
        yield test_client


def _outbox(workspace: Workspace) -> list[EmailMessage]:
    folder = outbox_dir(workspace)
    if not folder.exists():
        return []
    messages = []
    for path in sorted(folder.glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _sign_up(client: TestClient, address: str = NEW, **fields: str) -> str:
    form = {"email": address, "name": "Nia New", "list": "main", "website": "", **fields}
    answer = client.post(
        "/subscribe", data=form, headers={"referer": "https://www.example.org/about"}
    )
    assert answer.status_code == 200
    return answer.text


def test_sign_up_confirm_and_welcome_end_to_end(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    page = _sign_up(client, form="footer-box")
    assert "Check your inbox" in page and NEW in page

    # pending: on the list, never a recipient of a campaign
    subscriber = store.get_by_email(NEW)
    assert subscriber is not None and subscriber.list_status("main") == "pending"
    assert not store.is_sendable(subscriber.id, "main")
    assert NEW not in [r.email for r in store.iter_recipients("main")]

    # the confirmation message arrived through SMTP
    [confirm] = _outbox(workspace)
    assert confirm["To"] == f"Nia New <{NEW}>"
    assert "confirm" in confirm["Subject"].lower()
    assert confirm["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = CONFIRM_LINK.search(_text(confirm))
    assert match, _text(confirm)
    link = match.group(1)
    html_part = confirm.get_body(("html",))
    assert html_part is not None and link in str(html_part.get_content())

    # GET (a mail scanner, a preview) shows the button and changes nothing
    for _ in range(3):
        shown = client.get(link)
        assert shown.status_code == 200 and client.head(link).status_code == 200
    assert '<form method="post">' in shown.text and "Yes, subscribe me" in shown.text
    assert "unsubscribe at any time" in shown.text  # the consent statement is shown
    assert store.get_by_email(NEW).list_status("main") == "pending"  # type: ignore[union-attr]
    assert len(_outbox(workspace)) == 1

    # POST confirms
    version = re.search(r'name="consent_version" value="([0-9a-f]+)"', shown.text)
    assert version
    done = client.post(link, data={"consent_version": version.group(1)})
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert "set-cookie" not in done.headers and "location" not in done.headers
    assert store.is_sendable(subscriber.id, "main")
    assert NEW in [r.email for r in store.iter_recipients("main")]

    # the consent trail: the request and the confirmation, each with where it came from
    data = store.describe(NEW)
    assert data is not None
    [request] = [c for c in data["consents"] if c["action"] == "subscribe"]
    [confirmation] = [c for c in data["consents"] if c["action"] == "confirm"]
    for record in (request, confirmation):
        assert record["source"] == "web"
        assert record["ip"] == "192.0.2.44"
        assert record["user_agent"] == BROWSER
        assert datetime.fromisoformat(record["at"]).tzinfo is not None
    assert request["detail"] == {
        "step": "request",
        "form": "footer-box",
        "page": "https://www.example.org/about",
    }
    assert confirmation["consent_text"].startswith("I want to receive The Weekly Brief")
    assert confirmation["consent_version"] == version.group(1)
    [membership] = data["lists"]
    assert membership["status"] == "active" and membership["confirmed_at"] is not None

    # the welcome message, with a working unsubscribe link of its own
    welcome = _outbox(workspace)[1]
    assert "welcome" in welcome["Subject"].lower()
    assert welcome["To"] == f"Nia New <{NEW}>"
    unsubscribe = re.search(r"<https://brief\.example\.org(/u/[^>]+)>", welcome["List-Unsubscribe"])
    assert unsubscribe
    left = client.post(unsubscribe.group(1), data={"List-Unsubscribe": "One-Click"})
    assert left.status_code == 200
    assert not store.is_sendable(subscriber.id, "main")


def test_confirming_twice_is_harmless_and_welcomes_once(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    _sign_up(client)
    match = CONFIRM_LINK.search(_text(_outbox(workspace)[0]))
    assert match
    for _ in range(3):
        answer = client.post(match.group(1))
        assert answer.status_code == 200 and "You are subscribed" in answer.text
    data = store.describe(NEW)
    assert data is not None
    assert len([c for c in data["consents"] if c["action"] == "confirm"]) == 1
    assert len(_outbox(workspace)) == 2  # one confirm, one welcome
    assert "You are subscribed" in client.get(match.group(1)).text


def test_asking_again_answers_the_same_whether_new_pending_or_subscribed(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    store.add("old.hand@example.org", list_name="main", consent=Consent(source="cli"))
    answers = {
        "new": _sign_up(client, "fresh@example.org"),
        "pending": _sign_up(client, "fresh@example.org"),
        "subscribed": _sign_up(client, "old.hand@example.org"),
    }
    normalised = {
        k: v.replace("fresh@example.org", "X").replace("old.hand@example.org", "X")
        for k, v in answers.items()
    }
    assert len(set(normalised.values())) == 1
    # the active member stays active and is not mailed; the pending one's link still works,
    # and a second one within the hour is not sent
    assert store.get_by_email("old.hand@example.org").list_status("main") == "active"  # type: ignore[union-attr]
    assert [m["To"] for m in _outbox(workspace)] == ["Nia New <fresh@example.org>"]


def test_a_filled_honeypot_gets_the_same_page_and_nothing_happens(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    human = _sign_up(client, "human@example.org").replace("human@example.org", "X")
    bot = _sign_up(client, "bot@example.org", website="https://spam.example.net").replace(
        "bot@example.org", "X"
    )
    assert bot == human
    assert store.get_by_email("bot@example.org") is None
    assert [m["To"] for m in _outbox(workspace)] == ["Nia New <human@example.org>"]


def test_a_plain_multipart_form_works_too(client: TestClient, store: Store) -> None:
    answer = client.post(
        "/subscribe", files={"email": (None, "multi@example.org"), "list": (None, "main")}
    )
    assert answer.status_code == 200
    assert store.get_by_email("multi@example.org").list_status("main") == "pending"  # type: ignore[union-attr]


def test_bad_addresses_and_unknown_lists_are_refused_and_change_nothing(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    for address in ("", "not an address", "two@@example.org"):
        answer = client.post("/subscribe", data={"email": address, "list": "main"})
        assert answer.status_code == 400 and "does not look like an email address" in answer.text
    answer = client.post("/subscribe", data={"email": "x@example.org", "list": "vip-secret"})
    assert answer.status_code == 400 and "list that does not exist" in answer.text
    assert store.count() == 0
    assert store.list_names() == []  # no list was created by a form
    assert _outbox(workspace) == []


def test_a_confirm_link_expires_and_the_request_is_forgotten(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    asked = datetime.now(UTC) - timedelta(hours=workspace.config.serve.pending_expiry_hours + 1)
    with time_machine.travel(asked, tick=False):
        _sign_up(client)
    link = CONFIRM_LINK.search(_text(_outbox(workspace)[0]))
    assert link
    for method in ("GET", "POST"):
        answer = client.request(method, link.group(1))
        assert answer.status_code == 410 and "expired" in answer.text
    assert store.get_by_email(NEW).list_status("main") == "pending"  # type: ignore[union-attr]
    # the housekeeping the serve loop runs removes the stale request entirely
    from newsletter.web.app import WebApp

    assert WebApp(workspace, store).expire_pending() == 1
    assert store.get_by_email(NEW) is None


def test_a_tampered_confirm_link_gets_the_same_refusal_as_a_bad_unsubscribe_link(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    _sign_up(client)
    link = CONFIRM_LINK.search(_text(_outbox(workspace)[0]))
    assert link
    tampered = link.group(1)[:-2] + ("AA" if not link.group(1).endswith("AA") else "BB")
    bad_confirm = client.post(tampered)
    bad_unsubscribe = client.get("/u/whatever.nope")
    assert bad_confirm.status_code == bad_unsubscribe.status_code == 404
    assert bad_confirm.content == bad_unsubscribe.content
    subscriber = store.get_by_email(NEW)
    assert subscriber is not None
    wrong_list = make_confirm_token(workspace.secret_keys(), subscriber.id, 777)
    assert client.post(f"/c/{wrong_list}").content == bad_unsubscribe.content
    assert subscriber.list_status("main") == "pending"


def test_someone_who_unsubscribed_from_the_confirm_mail_cannot_then_confirm(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    _sign_up(client)
    confirm = _outbox(workspace)[0]
    never = re.search(r"<https://brief\.example\.org(/u/[^>]+)>", confirm["List-Unsubscribe"])
    link = CONFIRM_LINK.search(_text(confirm))
    assert never and link
    assert client.post(never.group(1)).status_code == 200
    assert client.post(link.group(1)).status_code == 404
    assert store.get_by_email(NEW).list_status("main") == "unsubscribed"  # type: ignore[union-attr]


def test_sign_ups_from_one_client_are_rate_limited(
    client: TestClient, workspace: Workspace
) -> None:
    limit = workspace.config.serve.subscribe_limit_per_minute
    for number in range(limit):
        _sign_up(client, f"reader{number}@example.org")
    flood = client.post("/subscribe", data={"email": "one.more@example.org"})
    assert flood.status_code == 429 and "retry-after" in flood.headers


def test_the_hosted_form_posts_to_itself_with_a_hidden_honeypot(client: TestClient) -> None:
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert '<form method="post">' in page.text
    assert 'name="website"' in page.text and 'aria-hidden="true"' in page.text
    assert 'name="list" value="main"' in page.text


def test_messages_go_to_the_server_named_by_the_smtp_url(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with EmbeddedServer(tmp_path / "relay") as relay:
        monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k")
        monkeypatch.setenv("NEWSLETTER_SMTP_URL", relay.url)
        ws = load_workspace(workspace_dir)
        with open_store_for(ws) as store, TestClient(create_app(ws, store)) as client:
            _sign_up(client)
            subscriber = store.get_by_email(NEW)
        [stored] = relay.messages
    assert stored.recipients == (NEW,)
    # the envelope sender is the VERP address that decodes back to the subscriber
    assert subscriber is not None
    assert decode_verp(stored.mail_from, ws.secret_keys()) == subscriber.id
    assert not outbox_dir(ws).exists()


def test_a_mail_server_that_is_down_does_not_break_the_answer(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k")
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", "smtp://127.0.0.1:9")  # nothing listens there
    ws = load_workspace(workspace_dir)
    with open_store_for(ws) as store, TestClient(create_app(ws, store)) as client:
        assert "Check your inbox" in _sign_up(client)
        assert store.get_by_email(NEW).list_status("main") == "pending"  # type: ignore[union-attr]
    assert "could not send the confirm message" in caplog.text


def test_the_confirmation_message_comes_from_the_workspace_templates(
    workspace: Workspace, store: Store
) -> None:
    messages = workspace.templates_dir / "messages"
    messages.mkdir(parents=True, exist_ok=True)
    (messages / "confirm.txt.j2").write_text(
        '{% set subject = "One click to join " ~ publication.name %}'
        "Hello {{ slot('greeting_name') }}! Join here: {{ confirm_url }}\n"
        "Leave: {{ slot('unsubscribe_url') }}\n",
        encoding="utf-8",
    )
    with TestClient(create_app(workspace, store)) as client:
        _sign_up(client)
    [message] = _outbox(workspace)
    assert message["Subject"] == "One click to join The Weekly Brief"
    assert _text(message).startswith("Hello Nia New! Join here: https://brief.example.org/c/")


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Nia\x00New"},
        {"email": "nul\x00@example.org"},
        {"consent_text": "I agree\x00"},
        {"form\x00": "hosted"},
    ],
)
def test_a_nul_byte_in_a_form_field_is_refused_before_anything_is_stored(
    client: TestClient, store: Store, workspace: Workspace, fields: dict[str, str]
) -> None:
    form = {"email": NEW, "list": "main", **fields}
    answer = client.post("/subscribe", data=form)
    assert answer.status_code == 400 and "cannot be stored" in answer.text
    assert "Traceback" not in answer.text
    assert store.count() == 0 and _outbox(workspace) == []


def test_a_nul_byte_in_the_confirm_form_is_refused(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    _sign_up(client)
    match = CONFIRM_LINK.search(_text(_outbox(workspace)[0]))
    assert match
    answer = client.post(match.group(1), data={"consent_version": "abc\x00"})
    assert answer.status_code == 400 and "cannot be stored" in answer.text
    assert store.get_by_email(NEW).list_status("main") == "pending"  # type: ignore[union-attr]


def _anonymised(page: str, *addresses: str) -> str:
    for address in addresses:
        page = page.replace(address, "X")
    return page


def test_sign_ups_for_one_address_from_many_clients_send_one_mail_per_interval(
    workspace: Workspace, store: Store
) -> None:
    app = create_app(workspace, store)
    start = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        for number in range(20):
            with TestClient(app, client=(f"198.51.100.{number + 1}", 4000)) as client:
                _sign_up(client, "victim@example.org")
    assert [m["To"] for m in _outbox(workspace)] == ["Nia New <victim@example.org>"]
    every = workspace.config.serve.confirmation_mail_every_minutes
    with (
        time_machine.travel(start + timedelta(minutes=every - 1), tick=False),
        TestClient(app, client=("203.0.113.9", 4000)) as client,
    ):
        _sign_up(client, "victim@example.org")
    assert len(_outbox(workspace)) == 1
    with (
        time_machine.travel(start + timedelta(minutes=every + 1), tick=False),
        TestClient(app, client=("203.0.113.9", 4000)) as client,
    ):
        _sign_up(client, "victim@example.org")
        _sign_up(client, "other@example.org")
    assert [m["To"] for m in _outbox(workspace)][1:] == [
        "Nia New <victim@example.org>",
        "Nia New <other@example.org>",
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example.net"},
        {"origin": "null"},
        {"referer": "https://evil.example.net/page"},
        {"origin": "https://evil.example.net", "referer": "https://brief.example.org/x"},
        {"origin": "http://brief.example.org"},
    ],
)
def test_a_post_from_another_site_answers_the_same_and_does_nothing(
    client: TestClient, store: Store, workspace: Workspace, headers: dict[str, str]
) -> None:
    data = {"email": "victim@example.org", "list": "main"}
    foreign = client.post("/subscribe", data=data, headers=headers)
    own = client.post("/subscribe", data={**data, "email": "me@example.org"})
    assert foreign.status_code == own.status_code == 200
    assert _anonymised(foreign.text, "victim@example.org") == _anonymised(
        own.text, "me@example.org"
    )
    assert store.get_by_email("victim@example.org") is None
    assert [m["To"] for m in _outbox(workspace)] == ["me@example.org"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"origin": "https://brief.example.org"},
        {"origin": "https://BRIEF.example.org:443"},
        {"referer": "https://brief.example.org/subscribe"},
        {"referer": "https://www.example.org/about"},
    ],
)
def test_posts_from_the_publications_own_pages_or_without_headers_are_accepted(
    client: TestClient, store: Store, headers: dict[str, str]
) -> None:
    answer = client.post("/subscribe", data={"email": NEW, "list": "main"}, headers=headers)
    assert answer.status_code == 200
    assert store.get_by_email(NEW) is not None


def test_form_origins_replace_the_default_origins(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = workspace_dir / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("[serve]\n", '[serve]\nform_origins = ["https://shop.example.com:8443"]\n')
    config.write_text(text, encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-key-not-secret")
    ws = load_workspace(workspace_dir)
    with open_store_for(ws) as store, TestClient(create_app(ws, store)) as client:
        client.post(
            "/subscribe",
            data={"email": "a@example.org"},
            headers={"origin": "https://shop.example.com:8443"},
        )
        client.post("/subscribe", data={"email": "b@example.org"}, headers={"referer": BRIEF_PAGE})
        assert store.get_by_email("a@example.org") is not None
        assert store.get_by_email("b@example.org") is None


BRIEF_PAGE = "https://brief.example.org/subscribe"


def test_form_origins_must_be_origins(workspace_dir: Path) -> None:
    from newsletter.errors import ConfigError

    config = workspace_dir / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("[serve]\n", '[serve]\nform_origins = ["www.example.org/form"]\n'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"serve\.form_origins.*not an origin"):
        load_workspace(workspace_dir)


@pytest.mark.parametrize("how", ["bounced", "complained", "erased"])
def test_a_suppressed_address_gets_the_same_answer_and_no_mail(
    client: TestClient, store: Store, workspace: Workspace, how: str
) -> None:
    address = "gone@example.org"
    store.add(address, list_name="main", consent=Consent(source="cli"))
    if how == "bounced":
        store.mark_bounced(address)
    elif how == "complained":
        store.mark_complained(address)
    else:
        store.erase(address, consent=Consent(source="cli"))
    page = _sign_up(client, address)
    fresh = _sign_up(client, "fresh@example.org")
    assert _anonymised(page, address) == _anonymised(fresh, "fresh@example.org")
    assert [m["To"] for m in _outbox(workspace)] == ["Nia New <fresh@example.org>"]


def test_someone_who_unsubscribed_from_everything_may_sign_up_again(
    client: TestClient, store: Store, workspace: Workspace
) -> None:
    store.add("back@example.org", list_name="main", consent=Consent(source="cli"))
    store.unsubscribe("back@example.org", consent=Consent(source="cli"))
    _sign_up(client, "back@example.org")
    assert [m["To"] for m in _outbox(workspace)] == ["back@example.org"]
