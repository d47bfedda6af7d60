"""The census at national scale: document type, key ids, residence history, status, roll base points.

Existing records stay valid: their hash message (`national-id:V12345678`) is the one the
platform's normaliser gives for V/E cédulas, so they become key generation 1 (today's
CENSUS_HASH_KEY). Their council becomes a residence since 1900-01-01 ("since always"); status active;
no roll base (re-importing the person computes it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "census_keys",
        sa.Column("key_id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_table(
        "resident_residences",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("resident_id", sa.Uuid(), nullable=False),
        sa.Column("council_id", sa.Uuid(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.CheckConstraint("valid_until IS NULL OR valid_until > valid_from", name="ck_resident_residences_validity"),
        sa.ForeignKeyConstraint(["council_id"], ["territories.id"]),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "ALTER TABLE resident_residences ADD CONSTRAINT ex_resident_residences_overlap"
        " EXCLUDE USING gist (resident_id WITH =, daterange(valid_from, valid_until) WITH &&)"
    )
    op.create_index("ix_resident_residences_council_id", "resident_residences", ["council_id"], unique=False)
    op.create_index(
        "uq_resident_residences_open",
        "resident_residences",
        ["resident_id"],
        unique=True,
        postgresql_where=sa.text("valid_until IS NULL"),
    )
    op.execute(
        "INSERT INTO resident_residences (id, resident_id, council_id, valid_from, valid_until)"
        " SELECT gen_random_uuid(), id, council_id, DATE '1900-01-01', NULL FROM residents"
    )

    op.alter_column("residents", "national_id_hash", new_column_name="document_hash")
    op.execute("ALTER TABLE residents RENAME CONSTRAINT residents_national_id_hash_key TO residents_document_hash_key")
    op.add_column("residents", sa.Column("document_key_id", sa.SmallInteger(), nullable=False, server_default="1"))
    op.alter_column("residents", "document_key_id", server_default=None)
    op.add_column("residents", sa.Column("roll_base", sa.LargeBinary(length=32), nullable=True))
    op.add_column("residents", sa.Column("status", sa.String(length=16), server_default="active", nullable=False))
    op.add_column(
        "residents",
        sa.Column("status_since", sa.Date(), nullable=False, server_default=sa.text("DATE '1900-01-01'")),
    )
    op.alter_column("residents", "status_since", server_default=None)
    op.create_index("ix_residents_document_key_id", "residents", ["document_key_id"], unique=False)
    op.create_check_constraint("ck_residents_status", "residents", "status IN ('active', 'inactive', 'deceased')")
    op.create_check_constraint("ck_residents_key_id", "residents", "document_key_id > 0")
    op.create_check_constraint("ck_residents_hash_length", "residents", "octet_length(document_hash) = 32")
    op.create_check_constraint(
        "ck_residents_roll_base_length", "residents", "roll_base IS NULL OR octet_length(roll_base) = 32"
    )
    op.drop_index("ix_residents_council_id", table_name="residents")
    op.drop_index("ix_residents_commune_id", table_name="residents")
    op.drop_column("residents", "council_id")
    op.drop_column("residents", "commune_id")


def downgrade() -> None:
    # Back to one council per resident: the current residence (or the latest one).
    op.add_column("residents", sa.Column("council_id", sa.Uuid(), nullable=True))
    op.add_column("residents", sa.Column("commune_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE residents r SET council_id = x.council_id, commune_id = t.parent_id"
        " FROM (SELECT DISTINCT ON (resident_id) resident_id, council_id FROM resident_residences"
        "       ORDER BY resident_id, valid_from DESC) x JOIN territories t ON t.id = x.council_id"
        " WHERE x.resident_id = r.id"
    )
    op.execute("DELETE FROM residents WHERE council_id IS NULL OR document_key_id <> 1")
    op.alter_column("residents", "council_id", nullable=False)
    op.alter_column("residents", "commune_id", nullable=False)
    op.create_foreign_key("residents_council_id_fkey", "residents", "territories", ["council_id"], ["id"])
    op.create_foreign_key("residents_commune_id_fkey", "residents", "territories", ["commune_id"], ["id"])
    op.create_index("ix_residents_council_id", "residents", ["council_id"], unique=False)
    op.create_index("ix_residents_commune_id", "residents", ["commune_id"], unique=False)
    for name in (
        "ck_residents_status",
        "ck_residents_key_id",
        "ck_residents_hash_length",
        "ck_residents_roll_base_length",
    ):
        op.drop_constraint(name, "residents", type_="check")
    op.drop_index("ix_residents_document_key_id", table_name="residents")
    op.drop_column("residents", "status_since")
    op.drop_column("residents", "status")
    op.drop_column("residents", "roll_base")
    op.drop_column("residents", "document_key_id")
    op.execute("ALTER TABLE residents RENAME CONSTRAINT residents_document_hash_key TO residents_national_id_hash_key")
    op.alter_column("residents", "document_hash", new_column_name="national_id_hash")
    op.drop_table("resident_residences")
    op.drop_table("census_keys")
