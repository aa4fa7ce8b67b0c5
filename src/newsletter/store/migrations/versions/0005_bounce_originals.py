"""Which sent message a bounce report is about, so repeated reports count once.

A mail server retrying one message sends a delay warning every few hours: counted per
report, one slow message would add up to several soft bounces. ``original_key`` names
the message the report returns (a hash of its Message-ID, else the report's own key),
and the soft-bounce count takes distinct values of it. Rows recorded before this
revision count one each, as they did.

Revision ID: 0005_bounce_originals
Revises: 0004_bounce_reports
Create Date: 2026-05-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_bounce_originals"
down_revision = "0004_bounce_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add bounce_reports.original_key, set to the report key on existing rows."""
    op.add_column("bounce_reports", sa.Column("original_key", sa.String(length=64), nullable=True))
    op.execute("UPDATE bounce_reports SET original_key = report_key WHERE original_key IS NULL")


def downgrade() -> None:
    """Drop bounce_reports.original_key."""
    with op.batch_alter_table("bounce_reports") as batch:
        batch.drop_column("original_key")
