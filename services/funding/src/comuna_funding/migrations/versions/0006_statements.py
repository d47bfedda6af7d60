"""Reconciliation of external statements (issue 10, docs/ledger.md "Reconciliation"): each
imported statement of a ledger account (one per account and file), its lines with the transfer
each matched, and the ledger's transfers no line accounts for (unmatched, or still pending).
The ledger's own tables are untouched; the runtime role may only read and insert these.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00
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
        "statements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_from", sa.Date(), nullable=False),
        sa.Column("period_to", sa.Date(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("imported_by", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="ck_statements_sha256"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_statements_currency"),
        sa.CheckConstraint("period_from <= period_to", name="ck_statements_period"),
        sa.CheckConstraint("lines > 0", name="ck_statements_lines"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_statements_account"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "sha256", name="uq_statements_account_file"),
    )
    op.create_table(
        "statement_lines",
        sa.Column("statement_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("pending_transfer_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("amount_minor > 0", name="ck_statement_lines_amount_positive"),
        sa.CheckConstraint("direction IN ('debit', 'credit')", name="ck_statement_lines_direction"),
        sa.CheckConstraint("length(reference) <= 500", name="ck_statement_lines_reference_length"),
        sa.CheckConstraint(
            "transfer_id IS NULL OR pending_transfer_id IS NULL", name="ck_statement_lines_matched_or_pending"
        ),
        sa.ForeignKeyConstraint(["statement_id"], ["statements.id"], name="fk_statement_lines_statement"),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"], name="fk_statement_lines_transfer"),
        sa.ForeignKeyConstraint(["pending_transfer_id"], ["transfers.id"], name="fk_statement_lines_pending_transfer"),
        sa.PrimaryKeyConstraint("statement_id", "line"),
        sa.UniqueConstraint("statement_id", "transfer_id", name="uq_statement_lines_transfer"),
    )
    op.create_table(
        "statement_transfers",
        sa.Column("statement_id", sa.Uuid(), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('unmatched', 'pending')", name="ck_statement_transfers_status"),
        sa.CheckConstraint("direction IN ('debit', 'credit')", name="ck_statement_transfers_direction"),
        sa.CheckConstraint("amount_minor > 0", name="ck_statement_transfers_amount_positive"),
        sa.ForeignKeyConstraint(["statement_id"], ["statements.id"], name="fk_statement_transfers_statement"),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"], name="fk_statement_transfers_transfer"),
        sa.PrimaryKeyConstraint("statement_id", "transfer_id"),
    )
    op.create_index("ix_statement_transfers_list", "statement_transfers", ["statement_id", "status", "seq"])


def downgrade() -> None:
    op.drop_index("ix_statement_transfers_list", table_name="statement_transfers")
    op.drop_table("statement_transfers")
    op.drop_table("statement_lines")
    op.drop_table("statements")
