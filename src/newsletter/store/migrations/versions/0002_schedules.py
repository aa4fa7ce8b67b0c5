"""Scheduled sends: what goes out when, and which process is running it.

Revision ID: 0002_schedules
Revises: 0001_subscribers
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_schedules"
down_revision = "0001_subscribers"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the schedules table and its (state, due_at) index."""
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_dir", sa.Text(), nullable=False),
        sa.Column("list_name", sa.String(length=100), nullable=False),
        sa.Column("due_at", _UTC, nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", _UTC, nullable=True),
        sa.Column("heartbeat_at", _UTC, nullable=True),
        sa.Column("finished_at", _UTC, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "state IN ('scheduled', 'running', 'done', 'failed', 'missed', 'cancelled')",
            name=op.f("ck_schedules_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_index("ix_schedules_state_due_at", "schedules", ["state", "due_at"])


def downgrade() -> None:
    """Drop the schedules table."""
    op.drop_index("ix_schedules_state_due_at", table_name="schedules")
    op.drop_table("schedules")
