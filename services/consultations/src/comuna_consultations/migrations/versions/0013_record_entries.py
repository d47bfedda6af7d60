"""The rest of the public record: witnesses' cosignatures (`tlog_cosignatures`), the tally
lines of ballot entries by commune (`record_tallies`, so a certification knows what the record
already counts) and the signed table bulletins (`record_bulletins`).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from comuna_platform import migration_steps

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    migration_steps.create_transparency_log_cosignatures_v1()
    op.create_table(
        "record_tallies",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("entry_index", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=True),
        sa.Column("votes", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("votes > 0", name="ck_record_tallies_votes"),
        sa.PrimaryKeyConstraint("consultation_id", "entry_index", "line", name=op.f("record_tallies_pkey")),
    )
    op.create_index("ix_record_tallies_commune", "record_tallies", ["consultation_id", "commune_id"])
    op.create_table(
        "record_bulletins",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("entry_index", sa.BigInteger(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("table_code", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("consultation_id", "entry_index", name=op.f("record_bulletins_pkey")),
    )
    op.create_index("ix_record_bulletins_commune", "record_bulletins", ["consultation_id", "commune_id", "version"])


def downgrade() -> None:
    op.drop_index("ix_record_bulletins_commune", table_name="record_bulletins")
    op.drop_table("record_bulletins")
    op.drop_index("ix_record_tallies_commune", table_name="record_tallies")
    op.drop_table("record_tallies")
    migration_steps.drop_transparency_log_cosignatures_v1()
