"""Recounts of funded communes: a superseding certified result is recorded for review.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "result_supersessions",
        sa.Column("allocation_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("supersedes", sa.BigInteger(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("funded_candidate_id", sa.Uuid(), nullable=False),
        sa.Column("new_winner_candidate_id", sa.Uuid(), nullable=True),
        sa.Column("winner_changed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["allocation_id"], ["allocations.id"], name="fk_result_supersessions_allocation"),
        sa.PrimaryKeyConstraint("allocation_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("result_supersessions")
