"""The hash-chained audit log: append-only by grants and a trigger.

`migrate` grants the runtime role only SELECT and INSERT on `audit_log` (the model's
`runtime_privileges`); the triggers below refuse UPDATE, DELETE and TRUNCATE to everyone,
the owner included (who would have to disable them first: see docs/audit.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUARDS = [
    """
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$
""",
    """
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()
""",
    """
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()
""",
    # Whatever the grants say (default privileges included), nobody but the owner may change rows.
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC",
]


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("object_kind", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("before_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("after_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(length=32), nullable=False),
        sa.CheckConstraint("seq > 0", name="ck_audit_log_seq"),
        sa.CheckConstraint(
            "octet_length(prev_hash) = 32 AND octet_length(entry_hash) = 32"
            " AND (before_hash IS NULL OR octet_length(before_hash) = 32)"
            " AND (after_hash IS NULL OR octet_length(after_hash) = 32)",
            name="ck_audit_log_hashes",
        ),
        sa.PrimaryKeyConstraint("seq"),
    )
    for statement in GUARDS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")
