"""Unsubscribe requests received by mail, remembered so a rerun acts on none twice.

Revision ID: 0007_unsubscribe_requests
Revises: 0006_subscriber_ids
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_unsubscribe_requests"
down_revision = "0006_subscriber_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the unsubscribe_requests table."""
    op.create_table(
        "unsubscribe_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unsubscribe_requests")),
        sa.UniqueConstraint("request_key", name=op.f("uq_unsubscribe_requests_request_key")),
    )


def downgrade() -> None:
    """Drop the unsubscribe requests."""
    op.drop_table("unsubscribe_requests")
