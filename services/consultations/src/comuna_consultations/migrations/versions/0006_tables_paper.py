"""Paper tables: tally sheets and their confirmation; an index to count a paper table's check-ins.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:15:00
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
        "tally_sheets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("table_id", sa.Uuid(), nullable=False),
        sa.Column("blank", sa.BigInteger(), nullable=False),
        sa.Column("null_votes", sa.BigInteger(), nullable=False),
        sa.Column("checked_in", sa.BigInteger(), nullable=False),
        sa.Column("scan_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("submitted_by", sa.String(length=64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_by", sa.String(length=64), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("blank >= 0 AND null_votes >= 0 AND checked_in >= 0", name="ck_tally_sheets_counts"),
        sa.CheckConstraint("confirmed_by IS NULL OR confirmed_by <> submitted_by", name="ck_tally_sheets_two_officers"),
        sa.CheckConstraint("(confirmed_by IS NULL) = (confirmed_at IS NULL)", name="ck_tally_sheets_confirmation"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id", "table_id"],
            ["voting_tables.consultation_id", "voting_tables.commune_id", "voting_tables.id"],
            name="fk_tally_sheets_table",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("table_id", name="uq_tally_sheets_table"),
        sa.UniqueConstraint("consultation_id", "commune_id", "id", name="uq_tally_sheets_commune_id"),
    )
    op.create_table(
        "tally_sheet_votes",
        sa.Column("sheet_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("votes", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("votes >= 0", name="ck_tally_sheet_votes_votes"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id", "sheet_id"],
            ["tally_sheets.consultation_id", "tally_sheets.commune_id", "tally_sheets.id"],
            name="fk_tally_sheet_votes_sheet",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id", "candidate_id"],
            ["candidates.consultation_id", "candidates.commune_id", "candidates.id"],
            name="fk_tally_sheet_votes_candidate",
        ),
        sa.PrimaryKeyConstraint("sheet_id", "candidate_id"),
    )
    # A paper table's recorded check-ins are counted once, when its sheet comes in: this partial
    # index keeps that count off a scan of every participation, and costs nothing on the other channels.
    op.create_index(
        "ix_participations_paper_table",
        "participations",
        ["table_id"],
        postgresql_where=sa.text("channel = 'paper'"),
    )


def downgrade() -> None:
    op.drop_index("ix_participations_paper_table", table_name="participations")
    op.drop_table("tally_sheet_votes")
    op.drop_table("tally_sheets")
