"""Several senders on one campaign: a lease row per sender, and the sender of each
delivery row, so a dead sender's in-flight rows (and only those) go back to the queue.

Revision ID: 0012_campaign_senders
Revises: 0011_occurrence_selection
Create Date: 2026-12-13
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_campaign_senders"
down_revision = "0011_occurrence_selection"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add table campaign_senders and deliveries.sender_id."""
    op.create_table(
        "campaign_senders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("heartbeat_at", _UTC, nullable=False),
        sa.Column("started_at", _UTC, nullable=False),
        sa.Column("ended_at", _UTC, nullable=True),
        sa.CheckConstraint(
            "state IN ('running', 'left', 'lost')", name=op.f("ck_campaign_senders_state")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_senders_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_senders")),
    )
    op.create_index(
        "ix_campaign_senders_campaign_id_state", "campaign_senders", ["campaign_id", "state"]
    )
    op.add_column("deliveries", sa.Column("sender_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Drop deliveries.sender_id and table campaign_senders."""
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("sender_id")
    op.drop_index("ix_campaign_senders_campaign_id_state", table_name="campaign_senders")
    op.drop_table("campaign_senders")
