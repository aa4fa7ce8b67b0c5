"""Which campaign a bounce or complaint report is about, so history can count them.

``bounce_reports.campaign_id`` names the campaign whose message came back: from the
signed unsubscribe token in the attached original (it carries the campaign), else from
the original's Message-ID, whose key is the delivery row. Rows recorded before this
revision stay NULL: nothing in them ties them to a campaign reliably.

Revision ID: 0010_bounce_campaigns
Revises: 0009_recurring_occurrences
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_bounce_campaigns"
down_revision = "0009_recurring_occurrences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add bounce_reports.campaign_id and an index for counting reports per campaign."""
    op.add_column("bounce_reports", sa.Column("campaign_id", sa.Integer(), nullable=True))
    op.create_index(
        "ix_bounce_reports_campaign_kind_subscriber",
        "bounce_reports",
        ["campaign_id", "kind", "subscriber_id"],
    )


def downgrade() -> None:
    """Drop bounce_reports.campaign_id and its index."""
    op.drop_index("ix_bounce_reports_campaign_kind_subscriber", table_name="bounce_reports")
    with op.batch_alter_table("bounce_reports") as batch:
        batch.drop_column("campaign_id")
