"""The articles a recurring occurrence selected when it was numbered, so a compose
that crashed or was raced composes the same ones later, whatever was featured meanwhile.

Revision ID: 0011_occurrence_selection
Revises: 0010_bounce_campaigns
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_occurrence_selection"
down_revision = "0010_bounce_campaigns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add recurring_occurrences.selection (JSON: the selected articles)."""
    op.add_column("recurring_occurrences", sa.Column("selection", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop recurring_occurrences.selection."""
    with op.batch_alter_table("recurring_occurrences") as batch:
        batch.drop_column("selection")
