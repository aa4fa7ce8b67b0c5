"""Alembic environment for the packaged migrations.

``newsletter.store.engine.upgrade_schema`` hands over an open connection in
``config.attributes["connection"]``; that is the only way these migrations run
at run time. For writing a new migration by hand, ``alembic -x url=sqlite:///x.db``
with ``script_location`` pointing here also works.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from newsletter.store.schema import metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # SQLite needs table rebuilds for most ALTERs
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the given connection, or a URL from ``-x url=...``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass -x url=DATABASE_URL")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)


run_migrations_online()
