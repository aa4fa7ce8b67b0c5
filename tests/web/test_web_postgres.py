"""The sign-up form on a real PostgreSQL server, whose text columns cannot hold NUL.

Uses the throwaway cluster of ``test_store_postgres`` (skipped where PostgreSQL's server
binaries or psycopg are missing).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from newsletter.store import Store, open_store
from newsletter.web import create_app
from newsletter.workspace import Workspace, load_workspace

pytest.importorskip("psycopg")


@pytest.fixture
def pg_workspace(
    workspace: Workspace,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Workspace:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", pg_url)
    return load_workspace(workspace.root)


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    with open_store(pg_url) as opened:
        yield opened


def test_a_nul_byte_in_a_sign_up_is_a_400_not_a_server_error(
    pg_workspace: Workspace, store: Store
) -> None:
    with TestClient(create_app(pg_workspace, store), raise_server_exceptions=False) as client:
        answer = client.post(
            "/subscribe",
            data={"email": "nia@example.org", "name": "Nia\x00", "list": "main"},
        )
        fine = client.post("/subscribe", data={"email": "ok@example.org", "list": "main"})
    assert answer.status_code == 400 and "cannot be stored" in answer.text
    assert fine.status_code == 200
    assert store.get_by_email("nia@example.org") is None
    assert store.get_by_email("ok@example.org") is not None
