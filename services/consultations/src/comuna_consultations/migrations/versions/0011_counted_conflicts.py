"""Certification is gated by counted conflicts only (docs/offline-tables.md): a certified version
stores how many of its conflicts had their second ballot in the count (`ballot_counted`).

Versions certified before this revision were gated by every conflict; they store 0 here (the
count was not kept then).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "commune_certifications",
        sa.Column("counted_conflicts", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("commune_certifications", "counted_conflicts")
