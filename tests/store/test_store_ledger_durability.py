"""The ledger session's commits on PostgreSQL: asynchronous while the sender works, full
durability again for whoever gets its connection from the pool next."""

from __future__ import annotations

from sqlalchemy import text

from newsletter.store import open_store
from newsletter.store.ledger import LedgerSession


def test_the_sender_commits_without_waiting_and_the_pool_gets_durable_connections(
    pg_url: str,
) -> None:
    with open_store(pg_url) as store:
        session = LedgerSession(store, campaign_id=1, list_id=1)
        with session._conn.begin():
            during = session._conn.execute(text("SHOW synchronous_commit")).scalar()
        pid = session._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        session._conn.rollback()
        session.close()
        with store.read() as conn:  # the one pooled connection, the session's
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() == pid
            after = conn.execute(text("SHOW synchronous_commit")).scalar()
    assert (during, after) == ("off", "on")
