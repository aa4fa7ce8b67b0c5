"""Bounce and complaint reports received by mail (``newsletter bounces``).

Revision ID: 0004_bounce_reports
Revises: 0003_deliveries
Create Date: 2026-05-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_bounce_reports"
down_revision = "0003_deliveries"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the bounce_reports table and its index."""
    op.create_table(
        "bounce_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_key", sa.String(length=64), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reported_at", _UTC, nullable=False),
        sa.Column("recorded_at", _UTC, nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('hard', 'soft', 'complaint')", name=op.f("ck_bounce_reports_kind")
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_bounce_reports_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_reports")),
        sa.UniqueConstraint("report_key", name=op.f("uq_bounce_reports_report_key")),
    )
    op.create_index(
        "ix_bounce_reports_subscriber_kind_at",
        "bounce_reports",
        ["subscriber_id", "kind", "reported_at"],
    )


def downgrade() -> None:
    """Drop the bounce reports."""
    op.drop_index("ix_bounce_reports_subscriber_kind_at", table_name="bounce_reports")
    op.drop_table("bounce_reports")
