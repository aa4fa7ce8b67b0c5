"""Subscriber ids are never handed out twice.

Without AUTOINCREMENT, SQLite gives a new row the highest id in the table plus one, so
deleting the newest subscriber (an expired double opt-in request) frees its id for the
next sign-up, and a link or VERP address made for the first person then acts on the
second. On SQLite the table is rebuilt with AUTOINCREMENT (its counter in
``sqlite_sequence`` only grows), seeded above every id the table or any table referring
to it has seen. PostgreSQL's ``SERIAL`` sequence never goes back and every id there came
from it: nothing to do.

The rebuild needs foreign-key enforcement off (dropping the old table would otherwise
cascade into every membership); ``store.engine.upgrade_schema`` does that on SQLite and
checks every reference afterwards. The way down changes nothing: earlier revisions work
with the AUTOINCREMENT table as it is.

Revision ID: 0006_subscriber_ids
Revises: 0005_bounce_originals
Create Date: 2026-05-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_subscriber_ids"
down_revision = "0005_bounce_originals"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)
# Every (table, column) holding a subscriber id at this revision.
_REFERENCES = (
    ("memberships", "subscriber_id"),
    ("consents", "subscriber_id"),
    ("deliveries", "subscriber_id"),
    ("bounce_reports", "subscriber_id"),
)


def _subscribers_table() -> sa.Table:
    """The subscribers table as revision 0001 made it (a copy: migrations never import schema)."""
    return sa.Table(
        "subscribers",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'unsubscribed', 'bounced', 'complained', 'erased')",
            name="ck_subscribers_status",
        ),
        sa.UniqueConstraint("email", name="uq_subscribers_email"),
        sa.Index("ix_subscribers_status_id", "status", "id"),
    )


def _highest_id_seen() -> int:
    """The highest subscriber id in the table or in any table referring to it (0 if none)."""
    bind = op.get_bind()
    parts = [sa.text("SELECT MAX(id) FROM subscribers")]
    parts += [sa.text(f"SELECT MAX({column}) FROM {table}") for table, column in _REFERENCES]
    return max((bind.execute(part).scalar() or 0) for part in parts)


def upgrade() -> None:
    """SQLite: rebuild subscribers with AUTOINCREMENT, its counter past every id seen."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
            # dropping the old table would delete every membership by cascade
            raise RuntimeError("0006 must run with SQLite foreign keys off (upgrade_schema)")
        highest = _highest_id_seen()
        with op.batch_alter_table(
            "subscribers",
            recreate="always",
            copy_from=_subscribers_table(),
            table_kwargs={"sqlite_autoincrement": True},
        ):
            pass
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'subscribers'"))
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('subscribers', :seq)"),
            {"seq": highest},
        )


def downgrade() -> None:
    """Nothing: earlier revisions work with an AUTOINCREMENT table, and ids stay unique."""
