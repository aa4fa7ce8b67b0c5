"""The storability checks an import runs once per batch: the quick pass never lets a bad
value through, and a value that only looks like one is stored as given."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.errors import StoreError
from newsletter.store import Consent, ImportRow, Store, open_store
from newsletter.store.records import first_unstorable, surely_storable
from newsletter.store.schema import consents

CLI = Consent(source="cli")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'n.db'}")
    yield opened
    opened.close()


def test_text_that_spells_a_nul_escape_is_stored_as_given(store: Store) -> None:
    spelled = "C:\\u0000 is not a NUL"
    assert not surely_storable({"name": spelled})  # the quick pass asks for a closer look
    result = store.import_batch(
        [ImportRow("a@example.com", name=spelled, attributes={"path": spelled})],
        list_name="main",
        consent=CLI,
    )
    assert result.added == 1
    [sub] = store.iter_subscribers()
    assert (sub.name, sub.attributes) == (spelled, {"path": spelled})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"deep": ["fine", {"k": "x\x00"}]}, "contains a NUL character"),
        ({"deep": ["fine", "\ud800"]}, "contains characters that are not valid text"),
        ({"x\x00": "key"}, "contains a NUL character"),
    ],
)
def test_a_bad_value_deep_inside_an_attribute_is_found_and_named(
    store: Store, value: dict[str, object], reason: str
) -> None:
    assert first_unstorable({"attribute 'a'": value}) == ("attribute 'a'", reason)
    rows = [ImportRow(f"r{i}@example.com", attributes={"a": "ok"}) for i in range(50)]
    rows.append(ImportRow("bad@example.com", line=52, attributes=value))
    with pytest.raises(StoreError, match=f"^line 52: attribute .* {reason}"):
        store.import_batch(rows, list_name="main", consent=CLI)
    assert store.count() == 0


def test_a_nul_in_the_consent_of_a_whole_batch_writes_nothing(store: Store) -> None:
    rows = [ImportRow(f"r{i}@example.com") for i in range(20)]
    with pytest.raises(StoreError, match=r"^consent text contains a NUL character"):
        store.import_batch(rows, list_name="main", consent=Consent("import", text="ok\x00"))
    assert store.count() == 0
    with store.read() as conn:
        assert conn.scalar(select(func.count()).select_from(consents)) == 0
