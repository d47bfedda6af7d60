"""The public record: the platform's transparency-log tables (`comuna_platform.tlog.store`),
one log per consultation; ballot batches are sequenced into it as they commit. `record_receipts`
finds the entry holding a receipt's commitment.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from comuna_platform import migration_steps

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    migration_steps.create_transparency_log_v1()
    op.create_table(
        "record_receipts",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commitment", sa.String(length=22), nullable=False),
        sa.Column("entry_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consultation_id", "commitment", name=op.f("record_receipts_pkey")),
    )


def downgrade() -> None:
    op.drop_table("record_receipts")
    migration_steps.drop_transparency_log_v1()
