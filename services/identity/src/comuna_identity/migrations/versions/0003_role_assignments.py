"""Identity is the authority on who may act where: role assignments, Keycloak accounts linked to
residents, one-time enrolment codes (only their SHA-256).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = (
    "role IN ('operator', 'regional_official', 'municipal_official', 'registrar', 'spokesperson', "
    "'overseer', 'table_officer', 'auditor', 'resident')"
)


def upgrade() -> None:
    op.create_table(
        "role_assignments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("territory_id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=True),
        sa.Column("table_code", sa.String(length=64), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("granted_by", sa.String(length=255), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=255), nullable=True),
        sa.Column("revoke_reason", sa.String(length=500), nullable=True),
        sa.CheckConstraint(ROLES, name="ck_role_assignments_role"),
        sa.CheckConstraint(
            "((role = 'table_officer') = (consultation_id IS NOT NULL))"
            " AND ((role = 'table_officer') = (table_code IS NOT NULL))",
            name="ck_role_assignments_table",
        ),
        sa.CheckConstraint("valid_until IS NULL OR valid_until > valid_from", name="ck_role_assignments_validity"),
        sa.CheckConstraint("(revoked_at IS NULL) = (revoked_by IS NULL)", name="ck_role_assignments_revoked"),
        sa.ForeignKeyConstraint(["territory_id"], ["territories.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_role_assignments_subject"), "role_assignments", ["subject"], unique=False)
    op.create_index(op.f("ix_role_assignments_territory_id"), "role_assignments", ["territory_id"], unique=False)
    op.create_index(
        "uq_role_assignments_live",
        "role_assignments",
        [
            "subject",
            "role",
            "territory_id",
            sa.text("coalesce(consultation_id, '00000000-0000-0000-0000-000000000000'::uuid)"),
            sa.text("coalesce(table_code, '')"),
        ],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_table(
        "resident_accounts",
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("resident_id", sa.Uuid(), nullable=False),
        sa.Column("linked_by", sa.String(length=255), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"]),
        sa.PrimaryKeyConstraint("subject"),
        sa.UniqueConstraint("resident_id"),
    )
    op.create_table(
        "enrolment_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("resident_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("issued_by", sa.String(length=255), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("burnt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("attempts >= 0", name="ck_enrolment_codes_attempts"),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    op.create_index(op.f("ix_enrolment_codes_resident_id"), "enrolment_codes", ["resident_id"], unique=False)
    op.create_index(
        "uq_enrolment_codes_live",
        "enrolment_codes",
        ["resident_id"],
        unique=True,
        postgresql_where=sa.text("redeemed_at IS NULL AND burnt_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_enrolment_codes_live", table_name="enrolment_codes")
    op.drop_index(op.f("ix_enrolment_codes_resident_id"), table_name="enrolment_codes")
    op.drop_table("enrolment_codes")
    op.drop_table("resident_accounts")
    op.drop_index("uq_role_assignments_live", table_name="role_assignments")
    op.drop_index(op.f("ix_role_assignments_territory_id"), table_name="role_assignments")
    op.drop_index(op.f("ix_role_assignments_subject"), table_name="role_assignments")
    op.drop_table("role_assignments")
