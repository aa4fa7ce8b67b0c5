"""The Store API on a real SQLite file: subscribe, leave, suppress, send-time checks, erase."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import Connection, func, select

from newsletter.errors import AddressError, StoreError
from newsletter.store import ERASE_HOOKS, Consent, Store, open_store
from newsletter.store.ops import add_suppression
from newsletter.store.schema import consents, memberships, subscribers, suppressions

CLI = Consent(source="cli")
WEB = Consent(
    source="web",
    ip="203.0.113.5",
    user_agent="Mozilla/5.0 (X11; Linux x86_64)",
    text="Yes, send me the weekly brief.",
    version="form-v3",
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "subscribers" / "newsletter.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{db_path}") as opened:
        yield opened


def _consent_actions(store: Store, email: str) -> list[str]:
    data = store.describe(email)
    assert data is not None
    return [item["action"] for item in data["consents"]]


def _emails(store: Store, list_name: str = "main", **kwargs: int) -> list[str]:
    return [r.email for r in store.iter_recipients(list_name, **kwargs)]


# -- addresses ----------------------------------------------------------------------------------


def test_addresses_are_normalised_and_unique_whatever_the_case(store: Store) -> None:
    assert store.add("  Ada.Lovelace@Example.COM ", list_name="main", consent=CLI) == "added"
    assert store.add("ada.lovelace@example.com", list_name="main", consent=CLI) == "unchanged"
    assert store.count() == 1
    sub = store.get_by_email("ADA.LOVELACE@EXAMPLE.COM")
    assert sub is not None and sub.email == "ada.lovelace@example.com"


@pytest.mark.parametrize("bad", ["", "no-at-sign", "two@@example.com", "a@b", "x@localhost"])
def test_bad_addresses_raise_address_error(store: Store, bad: str) -> None:
    with pytest.raises(AddressError):
        store.add(bad, list_name="main", consent=CLI)
    assert store.count() == 0


def test_add_updates_name_and_merges_attributes(store: Store) -> None:
    store.add("a@example.com", list_name="main", consent=CLI, name="A", attributes={"x": "1"})
    outcome = store.add(
        "a@example.com", list_name="main", consent=CLI, name="  Ann   B ", attributes={"y": "2"}
    )
    assert outcome == "updated"
    sub = store.get_by_email("a@example.com")
    assert sub is not None
    assert (sub.name, sub.attributes) == ("Ann B", {"x": "1", "y": "2"})


# -- leaving and suppression --------------------------------------------------------------------


def test_global_unsubscribe_is_recorded_once_and_blocks_every_list(store: Store) -> None:
    store.add("a@example.com", list_name="main", consent=CLI)
    store.add("a@example.com", list_name="weekly", consent=CLI)
    assert store.unsubscribe("a@example.com", consent=WEB) is True
    assert store.unsubscribe("A@example.com", consent=WEB) is False
    assert _consent_actions(store, "a@example.com").count("unsubscribe") == 1
    assert store.is_suppressed("a@example.com")
    assert _emails(store, "main") == [] and _emails(store, "weekly") == []
    sub = store.get_by_email("a@example.com")
    assert sub is not None and sub.status == "unsubscribed"
    assert {m.status for m in sub.memberships} == {"unsubscribed"}


def test_unsubscribe_by_id_from_one_list_keeps_the_other(store: Store) -> None:
    store.add("a@example.com", list_name="main", consent=CLI)
    store.add("a@example.com", list_name="weekly", consent=CLI)
    sub = store.get_by_email("a@example.com")
    assert sub is not None
    assert store.unsubscribe(sub.id, list_name="weekly", consent=WEB) is True
    assert store.unsubscribe(sub.id, list_name="weekly", consent=WEB) is False
    assert _emails(store, "weekly") == []
    assert _emails(store, "main") == ["a@example.com"]
    assert not store.is_suppressed("a@example.com")
    assert store.add("a@example.com", list_name="weekly", consent=CLI) == "suppressed"


def test_unsubscribing_an_unknown_address_blocks_it_for_later(store: Store) -> None:
    assert store.unsubscribe("stranger@example.com", consent=CLI) is True
    assert store.add("stranger@example.com", list_name="main", consent=CLI) == "suppressed"
    assert store.count() == 0
    assert store.unsubscribe(999, consent=CLI) is False


@pytest.mark.parametrize(
    ("mark", "status"), [("mark_bounced", "bounced"), ("mark_complained", "complained")]
)
def test_bounce_and_complaint_suppress_everywhere(store: Store, mark: str, status: str) -> None:
    store.add("a@example.com", list_name="main", consent=CLI)
    sub = store.get_by_email("a@example.com")
    assert sub is not None
    assert getattr(store, mark)(sub.id) is True
    assert getattr(store, mark)("a@example.com") is False
    assert store.is_suppressed("a@example.com")
    assert not store.is_sendable(sub.id, "main")
    assert store.count(status=status) == 1
    assert store.add("a@example.com", list_name="main", consent=CLI) == "suppressed"


def test_a_complaint_after_an_unsubscribe_strengthens_the_reason(store: Store) -> None:
    store.add("a@example.com", list_name="main", consent=CLI)
    store.unsubscribe("a@example.com", consent=CLI)
    assert store.mark_complained("a@example.com") is True
    assert store.count(status="complained") == 1
    with store.read() as conn:
        assert conn.scalar(select(suppressions.c.reason)) == "complained"


def test_resubscribe_needs_explicit_consent_and_is_recorded(store: Store) -> None:
    store.add("a@example.com", list_name="main", consent=CLI)
    store.unsubscribe("a@example.com", consent=CLI)
    assert store.add("a@example.com", list_name="main", consent=CLI) == "suppressed"
    outcome = store.add(
        "a@example.com", list_name="main", consent=CLI, resubscribe="asked in person on 3 March"
    )
    assert outcome == "resubscribed"
    assert not store.is_suppressed("a@example.com")
    assert _emails(store) == ["a@example.com"]
    data = store.describe("a@example.com")
    assert data is not None
    assert data["consents"][-1]["action"] == "resubscribe"
    assert data["consents"][-1]["detail"]["resubscribe"] == "asked in person on 3 March"


# -- send-time checks ---------------------------------------------------------------------------


def _populate(store: Store, n: int, list_name: str = "main") -> list[int]:
    for i in range(n):
        store.add(f"r{i:02d}@example.com", list_name=list_name, consent=CLI, name=f"R {i}")
    return [sub.id for sub in store.iter_subscribers()]


def test_recipients_stream_in_id_order_across_batches(store: Store) -> None:
    ids = _populate(store, 7)
    got = list(store.iter_recipients("main", batch_size=3))
    assert [r.id for r in got] == ids
    assert got[0].name == "R 0" and got[0].list_id == store.list_id("main")
    assert [r.id for r in store.iter_recipients("main", after_id=ids[4])] == ids[5:]


def test_unsubscribe_during_a_run_excludes_later_batches(store: Store) -> None:
    ids = _populate(store, 6)
    seen = []
    for recipient in store.iter_recipients("main", batch_size=2):
        seen.append(recipient.id)
        if len(seen) == 1:  # the web process records an unsubscribe mid-run
            store.unsubscribe(ids[4], list_name="main", consent=WEB)
            store.mark_bounced(ids[5])
    assert seen == ids[:4]


def test_pending_members_never_receive_and_confirm_records_consent(store: Store) -> None:
    pending = store.add_pending(
        "New.Reader@example.com", list_name="weekly", consent=WEB, name="New"
    )
    assert pending.status == "pending"
    assert not store.is_sendable(pending.subscriber_id, "weekly")
    assert _emails(store, "weekly") == []
    assert store.count(list_name="weekly", status="pending") == 1
    confirm = Consent(source="web", ip="203.0.113.6", user_agent="Phone", version="form-v3")
    assert store.confirm(pending.subscriber_id, "weekly", consent=confirm) is True
    assert store.confirm(pending.subscriber_id, "weekly", consent=confirm) is False
    assert store.is_sendable(pending.subscriber_id, "weekly")
    data = store.describe("new.reader@example.com")
    assert data is not None
    [membership] = data["lists"]
    assert membership["confirmed_at"] is not None
    subscribe, confirmed = data["consents"]
    assert subscribe["action"] == "subscribe" and confirmed["action"] == "confirm"
    assert subscribe["ip"] == "203.0.113.5" and subscribe["user_agent"].startswith("Mozilla")
    assert subscribe["consent_text"] == "Yes, send me the weekly brief."
    assert subscribe["consent_version"] == "form-v3"
    assert datetime.fromisoformat(subscribe["at"]).utcoffset() == timedelta(0)
    assert confirmed["ip"] == "203.0.113.6"


def test_pending_request_never_changes_a_known_persons_data(store: Store) -> None:
    store.add("a@example.com", list_name="main", consent=CLI, name="Real Name")
    result = store.add_pending("a@example.com", list_name="main", consent=WEB, name="Prankster")
    assert result.status == "active"
    sub = store.get_by_email("a@example.com")
    assert sub is not None and sub.name == "Real Name"


def test_confirming_lifts_an_earlier_suppression(store: Store) -> None:
    store.add("a@example.com", list_name="main", consent=CLI)
    store.unsubscribe("a@example.com", consent=CLI)
    pending = store.add_pending("a@example.com", list_name="main", consent=WEB)
    assert not store.is_sendable(pending.subscriber_id, "main")
    assert store.confirm(pending.subscriber_id, "main", consent=WEB)
    assert not store.is_suppressed("a@example.com")
    assert store.is_sendable(pending.subscriber_id, "main")


def test_a_globally_suppressed_member_can_ask_again_and_confirm(store: Store) -> None:
    store.add("a@example.com", list_name="main", consent=CLI)
    with store.write() as conn:  # blocked only by the suppression list, membership "active"
        add_suppression(conn, "a@example.com", "complained", datetime.now(UTC))
    pending = store.add_pending("a@example.com", list_name="main", consent=WEB)
    assert pending.status == "pending"
    assert not store.is_sendable(pending.subscriber_id, "main")
    assert store.confirm(pending.subscriber_id, "main", consent=WEB)
    assert store.is_sendable(pending.subscriber_id, "main")


def test_expire_pending_forgets_old_unconfirmed_requests(store: Store) -> None:
    with time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False):
        old = store.add_pending("old@example.com", list_name="main", consent=WEB)
        store.add("member@example.com", list_name="main", consent=CLI)
        store.add_pending("member@example.com", list_name="weekly", consent=WEB)
    with time_machine.travel(datetime(2026, 1, 5, tzinfo=UTC), tick=False):
        fresh = store.add_pending("fresh@example.com", list_name="main", consent=WEB)
        assert store.expire_pending(datetime(2026, 1, 4, tzinfo=UTC)) == 2
    assert store.get(old.subscriber_id) is None
    member = store.get_by_email("member@example.com")
    assert member is not None and [m.list_name for m in member.memberships] == ["main"]
    assert store.get(fresh.subscriber_id) is not None
    with store.read() as conn:
        orphan_consents = conn.scalar(
            select(func.count()).where(consents.c.subscriber_id == old.subscriber_id)
        )
    assert orphan_consents == 0


def test_sendable_ids_checks_a_whole_batch_at_once(store: Store) -> None:
    ids = _populate(store, 4)
    store.unsubscribe(ids[1], consent=CLI)
    store.unsubscribe(ids[2], list_name="main", consent=CLI)
    assert store.sendable_ids(ids, "main") == {ids[0], ids[3]}
    assert store.sendable_ids(ids, "no-such-list") == set()
    assert store.sendable_ids([], "main") == set()


def test_suppression_list_wins_even_over_an_inconsistent_row(store: Store) -> None:
    """Belt and braces: a hash on the suppression list blocks sending by itself."""
    ids = _populate(store, 2)
    with store.write() as conn:
        from newsletter.store.ops import add_suppression

        add_suppression(conn, "r00@example.com", "complained", datetime.now(UTC))
    assert store.sendable_ids(ids, "main") == {ids[1]}
    assert _emails(store) == ["r01@example.com"]


def test_recipients_of_an_unknown_list_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no list named 'nope'"):
        list(store.iter_recipients("nope"))


# -- counting -----------------------------------------------------------------------------------


def test_count_by_list_and_effective_status(store: Store) -> None:
    ids = _populate(store, 5)
    store.add("w@example.com", list_name="weekly", consent=CLI)
    store.unsubscribe(ids[0], consent=CLI)
    store.unsubscribe(ids[1], list_name="main", consent=CLI)
    store.mark_bounced(ids[2])
    store.add_pending("p@example.com", list_name="main", consent=WEB)
    assert store.count() == 7
    # without a list: what the lists add up to, so the one who left main is not active
    assert store.count(status="active") == 3
    assert store.count(status="unsubscribed") == 2
    assert store.count(status="pending") == 1
    assert store.count(list_name="main") == 6
    assert store.count(list_name="main", status="active") == 2
    assert store.count(list_name="main", status="unsubscribed") == 2
    assert store.count(list_name="main", status="bounced") == 1
    assert store.count(list_name="main", status="pending") == 1
    assert store.count(list_name="weekly") == 1
    with pytest.raises(StoreError, match="unknown status"):
        store.count(status="happy")
    with pytest.raises(StoreError, match="no list named"):
        store.count(list_name="nope")


# -- erasure ------------------------------------------------------------------------------------


def _dump(db_path: Path) -> str:
    with sqlite3.connect(db_path) as raw:
        return "\n".join(raw.iterdump())


def test_erase_removes_personal_data_but_keeps_blocking(store: Store, db_path: Path) -> None:
    store.add_pending(
        "Erin.Erased@example.com", list_name="main", consent=WEB, name="Erin Q. Erased"
    )
    sub = store.get_by_email("erin.erased@example.com")
    assert sub is not None
    store.confirm(sub.id, "main", consent=WEB)
    scrubbed: list[int] = []

    def hook(conn: Connection, subscriber_id: int) -> None:
        scrubbed.append(subscriber_id)

    ERASE_HOOKS.append(hook)
    try:
        assert store.erase("erin.erased@example.com", consent=CLI) is True
    finally:
        ERASE_HOOKS.remove(hook)
    assert scrubbed == [sub.id]
    dump = _dump(db_path)
    for pii in ("erin.erased@example.com", "Erin Q. Erased", "203.0.113.5", "Mozilla"):
        assert pii not in dump
    assert store.get(sub.id) is None and store.get_by_email("erin.erased@example.com") is None
    assert store.is_suppressed("Erin.Erased@example.com")
    assert store.add("erin.erased@example.com", list_name="main", consent=CLI) == "suppressed"
    assert store.sendable_ids([sub.id], "main") == set()
    assert store.count() == 0
    data = store.describe("erin.erased@example.com")
    assert data is not None and data["suppression"]["reason"] == "erased"
    assert "consents" not in data
    with store.read() as conn:
        actions = conn.scalars(select(consents.c.action)).all()
        remaining = conn.scalar(select(func.count()).select_from(memberships))
    assert actions == ["erase"] and remaining == 0


def test_erasing_an_unknown_address_still_blocks_it(store: Store) -> None:
    assert store.erase("nobody@example.com", consent=CLI) is False
    assert store.is_suppressed("nobody@example.com")
    assert store.describe("nobody@example.com") is not None
    assert store.describe("other@example.com") is None


# -- logging and concurrency --------------------------------------------------------------------


def test_no_address_reaches_the_log(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store.add("secret.person@example.com", list_name="main", consent=CLI, name="Secret Person")
    store.unsubscribe("secret.person@example.com", consent=CLI)
    store.erase("secret.person@example.com", consent=CLI)
    assert "secret.person" not in caplog.text
    assert "Secret Person" not in caplog.text


def test_two_writers_at_once_both_succeed(db_path: Path, store: Store) -> None:
    """A sender and a web process write at once (separate engines, WAL): nothing is lost."""
    other = open_store(f"sqlite:///{db_path}")
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(target: Store, prefix: str) -> None:
        start.wait()
        try:
            for i in range(40):
                target.add(f"{prefix}{i}@example.com", list_name="main", consent=CLI)
                if i % 4 == 0:
                    target.unsubscribe(f"{prefix}{i}@example.com", consent=WEB)
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(store, "sender")),
        threading.Thread(target=writer, args=(other, "web")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    assert errors == []
    assert store.count() == 80
    assert store.count(status="unsubscribed") == 20
    with store.read() as conn:
        assert conn.scalar(select(func.count()).select_from(suppressions)) == 20
        assert conn.scalar(select(func.count()).select_from(subscribers)) == 80


def test_an_expired_requests_id_is_never_given_to_the_next_person(store: Store) -> None:
    """The newest row going (an expired request) must not free its id for the next sign-up."""
    with time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False):
        store.add("first@example.com", list_name="main", consent=CLI)
        gone = store.add_pending("gone@example.com", list_name="main", consent=WEB)
    assert store.expire_pending(datetime(2026, 1, 2, tzinfo=UTC)) == 1
    newcomer = store.add_pending("new@example.com", list_name="main", consent=WEB)
    assert newcomer.subscriber_id > gone.subscriber_id
    assert store.get(gone.subscriber_id) is None


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.add("a@example.com", list_name="main", consent=CLI, name="A\x00"), "name"),
        (
            lambda s: s.add_pending(
                "a@example.com", list_name="main", consent=WEB, attributes={"city": "\x00"}
            ),
            "attribute 'city'",
        ),
        (
            lambda s: s.add(
                "a@example.com", list_name="main", consent=Consent("web", user_agent="x\x00")
            ),
            "user agent",
        ),
    ],
)
def test_a_nul_anywhere_is_refused_naming_the_field(store: Store, call: Any, field: str) -> None:
    with pytest.raises(StoreError) as info:
        call(store)
    assert str(info.value).startswith(f"{field} contains a NUL character")
    assert store.count() == 0


def test_someone_who_left_every_list_reads_unsubscribed_everywhere(store: Store) -> None:
    store.add("left@example.com", list_name="main", consent=CLI)
    store.add("left@example.com", list_name="weekly", consent=CLI)
    store.add("stays@example.com", list_name="main", consent=CLI)
    store.add("half@example.com", list_name="main", consent=CLI)
    store.add("half@example.com", list_name="weekly", consent=CLI)
    for list_name in ("main", "weekly"):
        store.unsubscribe("left@example.com", list_name=list_name, consent=CLI)
    store.unsubscribe("half@example.com", list_name="weekly", consent=CLI)
    store.add_pending("asked@example.com", list_name="weekly", consent=WEB)

    def emails(status: str) -> list[str]:
        return [sub.email for sub in store.iter_subscribers(status=status)]

    assert emails("unsubscribed") == ["left@example.com"]
    assert emails("active") == ["stays@example.com", "half@example.com"]
    assert emails("pending") == ["asked@example.com"]
    assert [s.email for s in store.iter_summaries(status="unsubscribed")] == ["left@example.com"]
    assert (store.count(status="active"), store.count(status="unsubscribed")) == (2, 1)
    assert store.count(status="pending") == 1
    summaries = {s.email: s.effective_status for s in store.iter_summaries()}
    assert summaries == {
        "left@example.com": "unsubscribed",
        "stays@example.com": "active",
        "half@example.com": "active",
        "asked@example.com": "pending",
    }
    left = store.describe("left@example.com")
    assert left is not None and left["status"] == "unsubscribed"
    # Python's rule and the SQL filter agree for everyone
    for status in ("active", "pending", "unsubscribed"):
        assert {s.email for s in store.iter_summaries() if s.effective_status == status} == set(
            emails(status)
        )


def test_removing_someone_from_a_list_they_are_not_on_changes_nothing(store: Store) -> None:
    store.add("a@example.com", list_name="main", consent=CLI)
    store.ensure_list("weekly")
    before = _consent_actions(store, "a@example.com")
    assert store.remove("a@example.com", list_name="weekly", consent=CLI) == "not on list"
    sub = store.get_by_email("a@example.com")
    assert sub is not None and [m.list_name for m in sub.memberships] == ["main"]
    assert _consent_actions(store, "a@example.com") == before
    # the person can still be added to that list later (no hidden "left" membership)
    assert store.add("a@example.com", list_name="weekly", consent=CLI) == "added"
    assert store.remove("a@example.com", list_name="weekly", consent=CLI) == "removed"
    assert store.remove("a@example.com", list_name="weekly", consent=CLI) == "already removed"
    assert not store.is_sendable(sub.id, "weekly") and store.is_sendable(sub.id, "main")
