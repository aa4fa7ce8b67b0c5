"""PostgreSQL imports write big batches with COPY: the same rows as an INSERT would
write, and a refused row stops the import naming its batch like any database error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from newsletter.audience.importing import import_file
from newsletter.errors import StoreError
from newsletter.store import Store, bulk_copy, open_store, ops
from newsletter.store.schema import consents, memberships, subscribers

pytest.importorskip("psycopg")

CSV_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "csv"


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    with open_store(pg_url) as opened:
        yield opened


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tables each COPY wrote to, in order (the real COPY still runs)."""
    seen: list[str] = []
    real = bulk_copy.copy_rows

    def spy(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
        seen.append(table.name)
        real(conn, table, rows)

    monkeypatch.setattr(bulk_copy, "copy_rows", spy)
    return seen


def _mailchimp_file(tmp_path: Path, prefix: str, rows: int) -> Path:
    """A Mailchimp export (consent times, IPs, merge fields) with ``rows`` people."""
    head = "Email Address,First Name,Last Name,CITY,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP\n"
    body = "".join(
        f"{prefix}{i}@example.com,Zoë {i},Ångström,Kraków {i % 3},"
        f"2024-01-0{i % 9 + 1} 10:00:00,192.0.2.{i % 200},2024-01-0{i % 9 + 1} 10:05:00,\n"
        for i in range(rows)
    )
    path = tmp_path / f"{prefix}.csv"
    path.write_text(head + body, encoding="utf-8")
    return path


def _stored(store: Store, prefix: str) -> list[tuple[Any, ...]]:
    """Everything written for the addresses starting with ``prefix``, without ids or times."""
    with store.read() as conn:
        people = conn.execute(
            select(subscribers.c.id, subscribers.c.email, subscribers.c.name)
            .add_columns(subscribers.c.attributes, subscribers.c.status)
            .where(subscribers.c.email.like(f"{prefix}%"))
            .order_by(subscribers.c.id)
        ).all()
        out = []
        for row in people:
            member = conn.execute(
                select(memberships.c.status, memberships.c.confirmed_at).where(
                    memberships.c.subscriber_id == row.id
                )
            ).one()
            consent = conn.execute(
                select(
                    consents.c.action, consents.c.source, consents.c.ip, consents.c.detail
                ).where(consents.c.subscriber_id == row.id)
            ).one()
            detail = {k: v for k, v in consent.detail.items() if k != "file"}
            local = row.email.removeprefix(prefix)
            out.append((local, row.name, row.attributes, row.status, *member, *consent[:3], detail))
        return out


def test_a_copied_batch_stores_what_an_insert_stores(
    store: Store, tmp_path: Path, copies: list[str]
) -> None:
    import_file(
        store,
        _mailchimp_file(tmp_path, "ins", 60),
        list_name=None,
        default_list="main",
        batch_size=ops.COPY_FROM_ROWS - 1,
    )
    assert copies == []
    import_file(
        store,
        _mailchimp_file(tmp_path, "cop", 60),
        list_name=None,
        default_list="main",
        batch_size=60,
    )
    assert copies == ["subscribers", "memberships", "consents"]
    copied = _stored(store, "cop")
    assert len(copied) == 60
    assert copied == _stored(store, "ins")


def test_a_row_refused_during_a_copy_stops_the_import_at_its_batch(
    store: Store, tmp_path: Path, copies: list[str]
) -> None:
    with store.write() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.email = 'cop70@example.com' THEN "
                "RAISE EXCEPTION 'refused by test'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON subscribers "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )
    path = _mailchimp_file(tmp_path, "cop", 120)
    with pytest.raises(StoreError, match=r"cop.csv:62: import stopped.*refused by test"):
        import_file(store, path, list_name=None, default_list="main", batch_size=60)
    assert copies[0] == "subscribers" and store.count() == 60


def test_a_batch_looks_its_keys_up_with_one_array_each(store: Store, tmp_path: Path) -> None:
    """Short statements the driver parses once, not a placeholder per address per batch."""
    widest: list[int] = []

    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith("SELECT") and not many:
            widest.append(len(params or ()))

    event.listen(store.engine, "before_cursor_execute", seen)
    report = import_file(
        store, _mailchimp_file(tmp_path, "arr", 200), list_name=None, default_list="main"
    )
    import_file(store, _mailchimp_file(tmp_path, "arr", 200), list_name=None, default_list="main")
    event.remove(store.engine, "before_cursor_execute", seen)
    assert report.counts.added == 200 and store.count(list_name="main") == 200
    assert widest and max(widest) <= 3


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -3,
        1.5,
        float("nan"),
        "x",
        "Zoë \u2028 \ud800 \x00",
        [],
        {},
        {"city": "Kraków", "tags": ["a", {"b": None}], "n": 1e300, 1: "int key"},
        "\U0001f600",
    ],
)
def test_json_text_for_copy_is_what_json_dumps_writes(value: Any) -> None:
    assert bulk_copy.json_dumps()(value) == json.dumps(value)
