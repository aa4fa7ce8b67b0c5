"""The serve pages in a real Chromium at phone size: readable, no sideways scrolling, big
buttons, and the forms work without JavaScript under the pages' Content-Security-Policy.

Screenshots go to tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path

import pytest

from newsletter.mail.tokens import make_unsubscribe_token
from newsletter.smtp.embedded import outbox_dir
from newsletter.store import Consent, Store, open_store_for
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace, load_workspace

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, ViewportSize  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PHONE: ViewportSize = {"width": 360, "height": 740}

pytestmark = [
    pytest.mark.browser,
]


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    with open_store_for(workspace) as opened:
        yield opened


@pytest.fixture
def server(workspace: Workspace, store: Store) -> Iterator[ServeServer]:
    serving = ServeServer(workspace, store=store, scheduler=False)
    serving.start_in_thread()
    yield serving
    serving.stop()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    yield page
    context.close()


def _check_phone_layout(page: Page, name: str) -> None:
    """No sideways scrolling, body text at least 16 px, the button at least 44 px tall."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"serve-{name}-phone.png"), full_page=True)
    overflow = page.evaluate(
        "document.scrollingElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: {overflow} px wider than the phone"
    size = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('main > p')).fontSize)"
    )
    assert size >= 16
    button = page.locator("button")
    if button.count():
        box = button.first.bounding_box()
        assert box is not None and box["height"] >= 44 and box["width"] >= 200


def test_unsubscribing_from_a_phone_with_the_pages_button(
    phone: Page, server: ServeServer, store: Store, workspace: Workspace
) -> None:
    store.add("pat@example.org", list_name="main", consent=Consent(source="cli"))
    subscriber, list_id = store.get_by_email("pat@example.org"), store.list_id("main")
    assert subscriber is not None and list_id is not None
    token = make_unsubscribe_token(workspace.secret_keys(), subscriber.id, list_id)
    phone.goto(f"{server.url}/u/{token}")
    assert phone.locator("h1").inner_text() == "Unsubscribe?"
    _check_phone_layout(phone, "confirm-unsubscribe")
    assert store.is_sendable(subscriber.id, "main")  # the browser's GET changed nothing
    phone.locator("button").click()
    phone.wait_for_selector("text=You are unsubscribed")
    assert phone.url == f"{server.url}/u/{token}"  # answered in place, no redirect
    _check_phone_layout(phone, "unsubscribed")
    assert not store.is_sendable(subscriber.id, "main")
    phone.goto(f"{server.url}/u/not-a-real-token")
    _check_phone_layout(phone, "invalid-link")


def test_signing_up_and_confirming_from_a_phone(
    phone: Page, server: ServeServer, store: Store, workspace: Workspace
) -> None:
    phone.goto(f"{server.url}/subscribe")
    _check_phone_layout(phone, "subscribe")
    # the honeypot is in the form but not on the screen
    trap = phone.locator("input[name=website]").bounding_box()
    assert trap is None or trap["x"] + trap["width"] <= 0
    phone.fill("input[name=email]", "sam@example.org")
    phone.fill("input[name=name]", "Sam Smith")
    phone.locator("button").click()
    phone.wait_for_selector("text=Check your inbox")
    _check_phone_layout(phone, "check-inbox")

    [path] = list(outbox_dir(workspace).glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"https://brief\.example\.org(/c/\S+)", text)
    assert link
    phone.goto(f"{server.url}{link.group(1)}")
    _check_phone_layout(phone, "confirm-subscription")
    assert store.get_by_email("sam@example.org").list_status("main") == "pending"  # type: ignore[union-attr]
    phone.locator("button").click()
    phone.wait_for_selector("text=You are subscribed")
    _check_phone_layout(phone, "subscribed")
    assert store.get_by_email("sam@example.org").list_status("main") == "active"  # type: ignore[union-attr]


def test_the_form_with_the_proof_of_work_challenge_subscribes_and_needs_javascript(
    browser: Browser, phone: Page, workspace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = workspace_dir / "newsletter.toml"
    text = config.read_text(encoding="utf-8").replace(
        "[serve]\n", '[serve]\nform_challenge = "proof-of-work"\nform_challenge_bits = 10\n'
    )
    config.write_text(text, encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-key-not-secret")
    ws = load_workspace(workspace_dir)
    with open_store_for(ws) as store:
        serving = ServeServer(ws, store=store, scheduler=False)
        serving.start_in_thread()
        try:
            phone.goto(f"{serving.url}/subscribe")
            _check_phone_layout(phone, "subscribe-challenge")
            phone.fill("input[name=email]", "kim@example.org")
            phone.locator("button").click()
            phone.wait_for_selector("text=Check your inbox")
            assert store.get_by_email("kim@example.org") is not None

            # without JavaScript the page says so and the button stays off
            context = browser.new_context(viewport=PHONE, java_script_enabled=False)
            plain = context.new_page()
            plain.goto(f"{serving.url}/subscribe")
            # innerText holds only what is rendered: <noscript> shows when scripts are off
            assert "This form needs JavaScript" in plain.inner_text("main")
            assert plain.locator("button").is_disabled()
            context.close()
        finally:
            serving.stop()
