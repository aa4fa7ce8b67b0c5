"""What each issue featured (canonical URL, feed GUID, folded title), for dedupe.

Revision ID: 0008_featured_articles
Revises: 0007_unsubscribe_requests
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_featured_articles"
down_revision = "0007_unsubscribe_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the featured_articles table."""
    op.create_table(
        "featured_articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_key", sa.Text(), nullable=False),
        sa.Column("issue_date", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_featured_articles")),
        sa.UniqueConstraint("kind", "value", "issue_key", name=op.f("uq_featured_articles_kind")),
    )


def downgrade() -> None:
    """Drop the featured articles."""
    op.drop_table("featured_articles")
