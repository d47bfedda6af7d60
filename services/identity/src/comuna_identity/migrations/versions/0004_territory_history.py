"""The territory register with history: effective-dated versions of every unit (owned by the register work).

`territories` keeps only what never changes (id, code); name, kind, parent and status move to
`territory_versions`, one row per period. Every existing unit gets one open version from
1900-01-01 (the register had no history before). Overlaps are refused by an exclusion
constraint, which needs `btree_gist` (a trusted extension: the database owner may create it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "kind IN ('country', 'state', 'municipality', 'parish', 'commune', 'communal_circuit', 'communal_council')"
OLD_KINDS = "kind IN ('country', 'state', 'municipality', 'commune', 'communal_circuit', 'communal_council')"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "territory_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("territory_id", sa.Uuid(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.CheckConstraint(KINDS, name="ck_territory_versions_kind"),
        sa.CheckConstraint("status IN ('active', 'dissolved')", name="ck_territory_versions_status"),
        sa.CheckConstraint("(parent_id IS NULL) = (kind = 'country')", name="ck_territory_versions_root"),
        sa.CheckConstraint(
            "parent_id IS NULL OR parent_id <> territory_id", name="ck_territory_versions_not_own_parent"
        ),
        sa.CheckConstraint("valid_until IS NULL OR valid_until > valid_from", name="ck_territory_versions_validity"),
        postgresql.ExcludeConstraint(
            (sa.column("territory_id"), "="),
            (sa.text("daterange(valid_from, valid_until)"), "&&"),
            name="ex_territory_versions_overlap",
            using="gist",
        ),
        sa.ForeignKeyConstraint(["territory_id"], ["territories.id"]),
        sa.ForeignKeyConstraint(["parent_id"], ["territories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("territory_id", "valid_from", name="uq_territory_versions_start"),
    )
    op.create_index("ix_territory_versions_parent", "territory_versions", ["parent_id", "valid_from"], unique=False)
    op.execute(
        "INSERT INTO territory_versions (id, territory_id, valid_from, valid_until, name, kind, parent_id, status) "
        "SELECT gen_random_uuid(), id, DATE '1900-01-01', NULL, name, kind, parent_id, 'active' FROM territories"
    )
    op.drop_constraint("ck_territories_root", "territories", type_="check")
    op.drop_constraint("ck_territories_kind", "territories", type_="check")
    op.drop_index(op.f("ix_territories_parent_id"), table_name="territories")
    op.drop_index(op.f("ix_territories_kind"), table_name="territories")
    op.drop_constraint("territories_parent_id_fkey", "territories", type_="foreignkey")
    op.drop_column("territories", "parent_id")
    op.drop_column("territories", "kind")
    op.drop_column("territories", "name")


def downgrade() -> None:
    # Back to one row per unit: the version in force today, else the latest one. Parishes have
    # no place in the old model; their children are re-hung on the parish's parent.
    op.add_column("territories", sa.Column("name", sa.String(length=200), nullable=True))
    op.add_column("territories", sa.Column("kind", sa.String(length=32), nullable=True))
    op.add_column("territories", sa.Column("parent_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE territories t SET name = v.name, kind = v.kind, parent_id = v.parent_id FROM ("
        " SELECT DISTINCT ON (territory_id) territory_id, name, kind, parent_id FROM territory_versions"
        " ORDER BY territory_id, (valid_from <= current_date AND (valid_until IS NULL OR current_date < valid_until))"
        " DESC, valid_from DESC) v WHERE v.territory_id = t.id"
    )
    op.drop_index("ix_territory_versions_parent", table_name="territory_versions")
    op.drop_table("territory_versions")
    op.execute(
        "UPDATE territories c SET parent_id = p.parent_id FROM territories p"
        " WHERE c.parent_id = p.id AND p.kind = 'parish'"
    )
    op.execute("DELETE FROM territories WHERE kind = 'parish'")
    op.alter_column("territories", "name", nullable=False)
    op.alter_column("territories", "kind", nullable=False)
    op.create_foreign_key("territories_parent_id_fkey", "territories", "territories", ["parent_id"], ["id"])
    op.create_index(op.f("ix_territories_kind"), "territories", ["kind"], unique=False)
    op.create_index(op.f("ix_territories_parent_id"), "territories", ["parent_id"], unique=False)
    op.create_check_constraint("ck_territories_kind", "territories", OLD_KINDS)
    op.create_check_constraint("ck_territories_root", "territories", "(parent_id IS NULL) = (kind = 'country')")
