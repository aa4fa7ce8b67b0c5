"""Recurring series: each time one comes due (state, number, issue, lease), and pauses.

Revision ID: 0009_recurring_occurrences
Revises: 0008_featured_articles
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_recurring_occurrences"
down_revision = "0008_featured_articles"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the recurring_occurrences and recurring_series tables."""
    op.create_table(
        "recurring_occurrences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series", sa.String(length=60), nullable=False),
        sa.Column("due_at", _UTC, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("issue_key", sa.Text(), nullable=True),
        sa.Column("lease_state", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", _UTC, nullable=True),
        sa.Column("heartbeat_at", _UTC, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recurring_occurrences")),
        sa.UniqueConstraint("series", "due_at", name=op.f("uq_recurring_occurrences_series")),
        sa.UniqueConstraint("series", "number", name=op.f("uq_recurring_occurrences_number")),
    )
    op.create_table(
        "recurring_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recurring_series")),
        sa.UniqueConstraint("name", name=op.f("uq_recurring_series_name")),
    )


def downgrade() -> None:
    """Drop the recurring tables."""
    op.drop_table("recurring_series")
    op.drop_table("recurring_occurrences")
