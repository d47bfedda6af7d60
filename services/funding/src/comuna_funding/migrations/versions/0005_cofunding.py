"""Co-funding (issue 10): funders, rules per consultation, the certified results they are
applied to, allocations per project and funder with a status and generations (recounts reverse
and re-allocate), tranches reserved per milestone, and the log of calls to remote sources.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "funders",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("territory_code", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("credentials_ref", sa.Text(), nullable=True),
        sa.Column("tls", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("deadline_ms", sa.Integer(), server_default=sa.text("5000"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,31}$'", name="ck_funders_name"),
        sa.CheckConstraint("kind IN ('national', 'pledge', 'remote')", name="ck_funders_kind"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_funders_currency"),
        sa.CheckConstraint("length(display_name) BETWEEN 1 AND 200", name="ck_funders_display_name"),
        sa.CheckConstraint(
            "(kind = 'remote') = (endpoint IS NOT NULL AND credentials_ref IS NOT NULL)",
            name="ck_funders_remote_endpoint",
        ),
        sa.CheckConstraint("deadline_ms BETWEEN 100 AND 600000", name="ck_funders_deadline"),
        sa.PrimaryKeyConstraint("name", name=op.f("funders_pkey")),
    )
    op.create_table(
        "funding_rules",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("funder", sa.Text(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("ranks", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("territory_code", sa.Text(), nullable=True),
        sa.Column("share_bp", sa.Integer(), nullable=False),
        sa.Column("per_project_cap_minor", sa.BigInteger(), nullable=True),
        sa.Column("total_cap_minor", sa.BigInteger(), nullable=True),
        sa.Column("declared_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("share_bp BETWEEN 1 AND 10000", name="ck_funding_rules_share"),
        sa.CheckConstraint(
            "per_project_cap_minor IS NULL OR per_project_cap_minor > 0", name="ck_funding_rules_project_cap"
        ),
        sa.CheckConstraint("total_cap_minor IS NULL OR total_cap_minor >= 0", name="ck_funding_rules_total_cap"),
        sa.CheckConstraint("cardinality(ranks) >= 1", name="ck_funding_rules_ranks"),
        sa.ForeignKeyConstraint(["funder"], ["funders.name"], name="fk_funding_rules_funder"),
        sa.PrimaryKeyConstraint("consultation_id", "position", name=op.f("funding_rules_pkey")),
    )
    op.create_table(
        "certified_results",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("commune_code", sa.Text(), nullable=False),
        sa.Column("funds_currency", sa.String(length=3), nullable=False),
        sa.Column("candidates", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consultation_id", "commune_id", "version", name=op.f("certified_results_pkey")),
    )
    op.create_table(
        "consultation_fundings",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("communes", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consultation_id", name=op.f("consultation_fundings_pkey")),
    )

    op.add_column("allocations", sa.Column("rank", sa.Integer(), nullable=True))
    op.add_column("allocations", sa.Column("rule_tier", sa.Integer(), nullable=True))
    op.add_column("allocations", sa.Column("result_version", sa.Integer(), server_default=sa.text("1"), nullable=False))
    op.add_column("allocations", sa.Column("generation", sa.Integer(), server_default=sa.text("1"), nullable=False))
    op.add_column("allocations", sa.Column("status", sa.Text(), server_default=sa.text("'committed'"), nullable=False))
    op.add_column("allocations", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("allocations", sa.Column("resolution_transfer_id", sa.Uuid(), nullable=True))
    op.add_column("allocations", sa.Column("reversal_transfer_id", sa.Uuid(), nullable=True))
    op.drop_constraint("uq_allocations_business_key", "allocations", type_="unique")
    op.create_unique_constraint(
        "uq_allocations_business_key",
        "allocations",
        ["consultation_id", "commune_id", "candidate_id", "funding_source", "generation"],
    )
    op.create_index(
        "uq_allocations_live",
        "allocations",
        ["consultation_id", "commune_id", "candidate_id", "funding_source"],
        unique=True,
        postgresql_where=sa.text("status IN ('committed', 'reserving')"),
    )
    op.create_index(
        "ix_allocations_reserving", "allocations", ["created_at"], postgresql_where=sa.text("status = 'reserving'")
    )
    op.create_check_constraint(
        "ck_allocations_status",
        "allocations",
        "status IN ('committed', 'failed', 'refused', 'reserving', 'reversed')",
    )
    op.create_check_constraint("ck_allocations_generation", "allocations", "generation >= 1")
    op.create_check_constraint(
        "ck_allocations_reversal", "allocations", "(status = 'reversed') = (reversal_transfer_id IS NOT NULL)"
    )
    op.create_foreign_key("fk_allocations_resolution", "allocations", "transfers", ["resolution_transfer_id"], ["id"])
    op.create_foreign_key("fk_allocations_reversal", "allocations", "transfers", ["reversal_transfer_id"], ["id"])
    op.create_unique_constraint(
        op.f("allocations_resolution_transfer_id_key"), "allocations", ["resolution_transfer_id"]
    )
    op.create_unique_constraint(op.f("allocations_reversal_transfer_id_key"), "allocations", ["reversal_transfer_id"])

    op.create_table(
        "tranches",
        sa.Column("milestone_id", sa.Uuid(), nullable=False),
        sa.Column("allocation_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("pending_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'reserved'"), nullable=False),
        sa.Column("resolution_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name="ck_tranches_amount_positive"),
        sa.CheckConstraint("status IN ('posted', 'reserved', 'voided')", name="ck_tranches_status"),
        sa.CheckConstraint("(status = 'reserved') = (resolution_transfer_id IS NULL)", name="ck_tranches_resolution"),
        sa.ForeignKeyConstraint(["allocation_id"], ["allocations.id"], name="fk_tranches_allocation"),
        sa.ForeignKeyConstraint(["pending_transfer_id"], ["transfers.id"], name="fk_tranches_pending_transfer"),
        sa.ForeignKeyConstraint(["resolution_transfer_id"], ["transfers.id"], name="fk_tranches_resolution"),
        sa.PrimaryKeyConstraint("milestone_id", name=op.f("tranches_pkey")),
        sa.UniqueConstraint("pending_transfer_id", name=op.f("tranches_pending_transfer_id_key")),
        sa.UniqueConstraint("resolution_transfer_id", name=op.f("tranches_resolution_transfer_id_key")),
    )
    op.create_index("ix_tranches_allocation_id", "tranches", ["allocation_id"])
    op.create_index("ix_tranches_project_id", "tranches", ["project_id"])
    op.create_table(
        "source_calls",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("allocation_id", sa.Uuid(), nullable=False),
        sa.Column("funder", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("needs_reconciliation", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("operation IN ('reserve', 'commit', 'cancel')", name="ck_source_calls_operation"),
        sa.ForeignKeyConstraint(["allocation_id"], ["allocations.id"], name="fk_source_calls_allocation"),
        sa.PrimaryKeyConstraint("id", name=op.f("source_calls_pkey")),
    )
    op.create_index("ix_source_calls_allocation_id", "source_calls", ["allocation_id"])
    op.create_index(
        "ix_source_calls_reconcile", "source_calls", ["at"], postgresql_where=sa.text("needs_reconciliation")
    )


def downgrade() -> None:
    op.drop_index("ix_source_calls_reconcile", table_name="source_calls")
    op.drop_index("ix_source_calls_allocation_id", table_name="source_calls")
    op.drop_table("source_calls")
    op.drop_index("ix_tranches_project_id", table_name="tranches")
    op.drop_index("ix_tranches_allocation_id", table_name="tranches")
    op.drop_table("tranches")
    op.drop_constraint(op.f("allocations_reversal_transfer_id_key"), "allocations", type_="unique")
    op.drop_constraint(op.f("allocations_resolution_transfer_id_key"), "allocations", type_="unique")
    op.drop_constraint("fk_allocations_reversal", "allocations", type_="foreignkey")
    op.drop_constraint("fk_allocations_resolution", "allocations", type_="foreignkey")
    for name in ("ck_allocations_reversal", "ck_allocations_generation", "ck_allocations_status"):
        op.drop_constraint(name, "allocations", type_="check")
    op.drop_index("ix_allocations_reserving", table_name="allocations")
    op.drop_index("uq_allocations_live", table_name="allocations")
    op.drop_constraint("uq_allocations_business_key", "allocations", type_="unique")
    op.create_unique_constraint(
        "uq_allocations_business_key", "allocations", ["consultation_id", "commune_id", "funding_source"]
    )
    for column in (
        "reversal_transfer_id",
        "resolution_transfer_id",
        "reason",
        "status",
        "generation",
        "result_version",
        "rule_tier",
        "rank",
    ):
        op.drop_column("allocations", column)
    op.drop_table("consultation_fundings")
    op.drop_table("certified_results")
    op.drop_table("funding_rules")
    op.drop_table("funders")
