"""Offline tables: the batches their devices synced (idempotency by the device's batch id).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offline_syncs",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("table_id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("checkins", sa.Integer(), nullable=False),
        sa.Column("ballots", sa.Integer(), nullable=False),
        sa.Column("null_votes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("checkins >= 0 AND ballots >= 0 AND null_votes >= 0", name="ck_offline_syncs_counts"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id", "table_id"],
            ["voting_tables.consultation_id", "voting_tables.commune_id", "voting_tables.id"],
            name="fk_offline_syncs_table",
        ),
        sa.PrimaryKeyConstraint("batch_id"),
    )
    op.create_index("ix_offline_syncs_table", "offline_syncs", ["consultation_id", "table_id"])


def downgrade() -> None:
    op.drop_index("ix_offline_syncs_table", table_name="offline_syncs")
    op.drop_table("offline_syncs")
