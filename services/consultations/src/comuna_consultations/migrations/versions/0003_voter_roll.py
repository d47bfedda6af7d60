"""The voter roll, streamed from identity: its load state and its entries (by entry key).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 17:00:00
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
        "roll_loads",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("cutoff", sa.Date(), nullable=False),
        sa.Column("voting_day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expected_count", sa.BigInteger(), nullable=True),
        sa.Column("expected_digest", sa.LargeBinary(length=32), nullable=True),
        sa.Column("voter_key", sa.LargeBinary(length=32), nullable=True),
        sa.Column("login_key", sa.LargeBinary(length=32), nullable=True),
        sa.Column("loaded_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('requested', 'loading', 'verified', 'refused')", name="ck_roll_loads_status"),
        sa.CheckConstraint("loaded_seq >= 0", name="ck_roll_loads_seq"),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"], name="fk_roll_loads_consultation"),
        sa.PrimaryKeyConstraint("consultation_id"),
    )
    op.create_table(
        "roll_entries",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("voter_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("login_key", sa.LargeBinary(length=32), nullable=True),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("council_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("consultation_id", "voter_key"),
    )


def downgrade() -> None:
    op.drop_table("roll_entries")
    op.drop_table("roll_loads")
