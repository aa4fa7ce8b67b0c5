"""Links are bound to the person they were made for, not just to a subscriber id.

On the real starlette app (TestClient, in-process ASGI) with real SQLite files: a database
rebuilt by export and import numbers people anew, an erased person keeps their tombstone,
and in neither case may a link made for someone act on anyone else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from newsletter.audience.exporting import export_file
from newsletter.audience.importing import import_file
from newsletter.mail.settings import MessageSettings
from newsletter.mail.slots import SlotGrammar
from newsletter.mail.template import build_template
from newsletter.mail.tokens import (
    UNSUBSCRIBE_PATH,
    UnsubscribeTokens,
    make_confirm_token,
    make_unsubscribe_token,
)
from newsletter.store import Consent, Store, open_store, open_store_for
from newsletter.store.records import Recipient
from newsletter.web import create_app
from newsletter.workspace import Workspace

CLI = Consent(source="cli")
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    with open_store_for(workspace) as opened:
        yield opened


def _client(workspace: Workspace, store: Store) -> TestClient:
    return TestClient(create_app(workspace, store), follow_redirects=False)


def _ids(store: Store, email: str) -> tuple[int, int]:
    subscriber, list_id = store.get_by_email(email), store.list_id("main")
    assert subscriber is not None and list_id is not None
    return subscriber.id, list_id


def test_a_link_made_for_ann_does_nothing_to_bob_who_now_holds_her_id(
    workspace: Workspace, tmp_path: Path
) -> None:
    keys = workspace.secret_keys()
    with open_store(f"sqlite:///{tmp_path / 'before.db'}") as before:
        before.add("ann@example.org", list_name="main", consent=CLI)
        before.add("bob@example.org", list_name="main", consent=CLI)
        ann_id, list_id = _ids(before, "ann@example.org")
        token = make_unsubscribe_token(keys, ann_id, list_id, 3, email="ann@example.org")
        before.unsubscribe("ann@example.org", consent=CLI)
        export_file(before, tmp_path / "people.csv")
    # moved to a new database: Ann left, so Bob is the first row there and gets her old id
    with open_store_for(workspace) as after:
        import_file(after, tmp_path / "people.csv", list_name=None, default_list="main")
        bob_id, _ = _ids(after, "bob@example.org")
        assert bob_id == ann_id
        with _client(workspace, after) as client:
            assert client.get(f"/u/{token}").status_code == 404
            assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 404
        assert after.is_sendable(bob_id, "main")


def test_ann_own_link_works_and_stops_working_once_she_is_erased(
    workspace: Workspace, store: Store
) -> None:
    store.add("ann@example.org", list_name="main", consent=CLI)
    ann_id, list_id = _ids(store, "ann@example.org")
    token = make_unsubscribe_token(
        workspace.secret_keys(), ann_id, list_id, email="ann@example.org"
    )
    with _client(workspace, store) as client:
        assert client.get(f"/u/{token}").status_code == 200
        store.erase("ann@example.org", consent=CLI)
        store.add("ann@example.org", list_name="main", consent=CLI, resubscribe="asked again")
        assert client.get(f"/u/{token}").status_code == 404
    assert store.is_sendable(_ids(store, "ann@example.org")[0], "main")


def test_a_confirm_link_is_refused_for_anyone_but_its_person(
    workspace: Workspace, store: Store
) -> None:
    pending = store.add_pending("ann@example.org", list_name="main", consent=CLI)
    keys = workspace.secret_keys()
    for_ann = make_confirm_token(
        keys, pending.subscriber_id, pending.list_id, email="ann@example.org"
    )
    for_eve = make_confirm_token(
        keys, pending.subscriber_id, pending.list_id, email="eve@example.org"
    )
    with _client(workspace, store) as client:
        assert client.get(f"/c/{for_eve}").status_code == 404
        assert client.post(f"/c/{for_eve}").status_code == 404
        assert client.get(f"/c/{for_ann}").status_code == 200


def test_a_link_minted_before_binding_still_works_for_its_subscriber(
    workspace: Workspace, store: Store
) -> None:
    store.add("ann@example.org", list_name="main", consent=CLI)
    ann_id, list_id = _ids(store, "ann@example.org")
    legacy = make_unsubscribe_token(workspace.secret_keys(), ann_id, list_id, 4)
    with _client(workspace, store) as client:
        assert client.post(f"/u/{legacy}", data=ONE_CLICK).status_code == 200
    assert not store.is_sendable(ann_id, "main")


def test_every_campaign_message_carries_a_link_bound_to_its_recipient() -> None:
    keys = ("key-2026",)
    slots = SlotGrammar.for_keys(keys)
    settings = MessageSettings(
        publication="The Harbour Letter",
        from_name="The Harbour Letter",
        from_address="letter@harbour.example.org",
        base_url="https://harbour.example.org",
        secret_keys=keys,
    )
    template = build_template(
        settings,
        subject="Harbour news",
        html_body=f"<p>{slots.token('unsubscribe_url')}</p>",
        text_body=slots.token("unsubscribe_url"),
        campaign="2026-11-28-harbour-news",
        list_id=3,
        list_name="Main",
        campaign_id=12,
    )
    url = template.slot_values(Recipient(41, "ann@example.org"))["unsubscribe_url"]
    tokens = UnsubscribeTokens(keys)
    claim = tokens.read(url.rsplit(UNSUBSCRIBE_PATH, 1)[1])
    assert (claim.subscriber_id, claim.list_id, claim.campaign_id) == (41, 3, 12)
    assert tokens.owned_by(claim, "ann@example.org")
    assert not tokens.owned_by(claim, "bob@example.org")
