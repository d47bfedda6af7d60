"""Frozen voter rolls per consultation: entries, counts, digest, and entry keys prepared ahead.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voter_rolls",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("cutoff", sa.Date(), nullable=False),
        sa.Column("voting_day", sa.Date(), nullable=False),
        sa.Column("commune_ids", sa.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=True),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("prepare_seconds", sa.Float(), nullable=True),
        sa.Column("freeze_seconds", sa.Float(), nullable=True),
        sa.CheckConstraint("status IN ('preparing', 'frozen')", name="ck_voter_rolls_status"),
        sa.CheckConstraint("cutoff <= voting_day", name="ck_voter_rolls_dates"),
        sa.CheckConstraint(
            "(status = 'frozen') = (frozen_at IS NOT NULL AND digest IS NOT NULL AND entry_count IS NOT NULL)",
            name="ck_voter_rolls_frozen",
        ),
        sa.PrimaryKeyConstraint("consultation_id"),
    )
    op.create_table(
        "voter_roll_keys",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("resident_id", sa.Uuid(), nullable=False),
        sa.Column("voter_key", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(["consultation_id"], ["voter_rolls.consultation_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("consultation_id", "resident_id"),
    )
    op.create_table(
        "voter_roll_entries",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("voter_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("login_key", sa.LargeBinary(length=32), nullable=True),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("council_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["consultation_id"], ["voter_rolls.consultation_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("consultation_id", "seq"),
        sa.UniqueConstraint("consultation_id", "voter_key", name="uq_voter_roll_entries_key"),
    )
    op.create_table(
        "voter_roll_counts",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("territory_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("voters", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('commune', 'council')", name="ck_voter_roll_counts_kind"),
        sa.ForeignKeyConstraint(["consultation_id"], ["voter_rolls.consultation_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("consultation_id", "territory_id"),
    )


def downgrade() -> None:
    op.drop_table("voter_roll_counts")
    op.drop_table("voter_roll_entries")
    op.drop_table("voter_roll_keys")
    op.drop_table("voter_rolls")
