"""Milestones record a tranche refused by funding (funding.tranche.rejected).

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding them rewrites nothing and existing rows need no value.
    op.add_column("milestones", sa.Column("disbursement_rejected_reason", sa.String(length=200), nullable=True))
    op.add_column("milestones", sa.Column("disbursement_rejected_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "ck_milestones_rejection_fields",
        "milestones",
        "(disbursement_rejected_reason IS NULL) = (disbursement_rejected_at IS NULL)",
    )
    op.create_check_constraint(
        "ck_milestones_rejection_status",
        "milestones",
        "disbursement_rejected_reason IS NULL OR status = 'verified'",
    )


def downgrade() -> None:
    op.drop_constraint("ck_milestones_rejection_status", "milestones", type_="check")
    op.drop_constraint("ck_milestones_rejection_fields", "milestones", type_="check")
    op.drop_column("milestones", "disbursement_rejected_at")
    op.drop_column("milestones", "disbursement_rejected_reason")
