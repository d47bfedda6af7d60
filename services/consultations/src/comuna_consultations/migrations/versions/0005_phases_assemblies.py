"""The published phases of a consultation, commune holds, assemblies, proposals and prioritisation.

Consultations gain the three dates they lacked (candidate registration close, roll cut-off,
certification opening) and the declared rules of prioritisation. Existing rows get dates derived
from their own: registration closes and the roll is cut off half-way between the assemblies'
opening and voting day, certification opens when voting closes; a consultation whose voting an
operator started or closed by hand keeps that instant as its date (the clock now decides, so the
stored status keeps only "certified"). Candidates gain category, cost, proposal and council;
rows from before keep NULLs under a NOT VALID check that binds every new row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEDULE_ORDER = (
    "assemblies_open_at < candidates_close_at AND candidates_close_at <= roll_cutoff_at"
    " AND roll_cutoff_at < voting_opens_at AND voting_opens_at < voting_closes_at"
    " AND voting_closes_at <= certification_opens_at"
)
CATEGORIES = (
    "category IN ('water', 'electricity', 'health', 'education', 'roads', 'housing', 'food_production',"
    " 'sports', 'culture', 'other')"
)


def _schedule() -> None:
    for column in ("candidates_close_at", "roll_cutoff_at", "certification_opens_at"):
        op.add_column("consultations", sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint("ck_consultations_schedule", "consultations", type_="check")
    op.drop_constraint("ck_consultations_status", "consultations", type_="check")
    # Voting started or closed by hand: that instant becomes the date, when it keeps the order.
    op.execute(
        "UPDATE consultations SET voting_opens_at = voting_started_at"
        " WHERE voting_started_at IS NOT NULL AND voting_started_at > assemblies_open_at"
        " AND voting_started_at < voting_closes_at"
    )
    op.execute(
        "UPDATE consultations SET voting_closes_at = closed_at"
        " WHERE closed_at IS NOT NULL AND closed_at > voting_opens_at AND closed_at < voting_closes_at"
    )
    op.execute(
        "UPDATE consultations SET"
        " candidates_close_at = assemblies_open_at + (voting_opens_at - assemblies_open_at) / 2,"
        " roll_cutoff_at = assemblies_open_at + (voting_opens_at - assemblies_open_at) / 2,"
        " certification_opens_at = voting_closes_at"
    )
    op.execute("UPDATE consultations SET status = 'open' WHERE status <> 'certified'")
    for column in ("candidates_close_at", "roll_cutoff_at", "certification_opens_at"):
        op.alter_column("consultations", column, nullable=False)
    op.create_check_constraint("ck_consultations_schedule", "consultations", SCHEDULE_ORDER)
    op.create_check_constraint("ck_consultations_status", "consultations", "status IN ('open', 'certified')")
    op.add_column("consultations", sa.Column("max_candidates", sa.Integer(), server_default="10", nullable=False))
    op.add_column(
        "consultations", sa.Column("funds_per_commune", sa.BigInteger(), server_default="1000000", nullable=False)
    )
    op.add_column(
        "consultations", sa.Column("funds_currency", sa.String(length=3), server_default="USD", nullable=False)
    )
    op.create_check_constraint("ck_consultations_max_candidates", "consultations", "max_candidates >= 1")
    op.create_check_constraint("ck_consultations_funds", "consultations", "funds_per_commune > 0")
    op.create_check_constraint("ck_consultations_currency", "consultations", "funds_currency ~ '^[A-Z]{3}$'")
    op.create_table(
        "schedule_amendments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("amended_by", sa.String(length=255), nullable=False),
        sa.Column("amended_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"], name="fk_schedule_amendments_consultation"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_schedule_amendments_consultation", "schedule_amendments", ["consultation_id", "amended_at"])
    op.create_table(
        "commune_holds",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("voting_opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voting_closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("held_by", sa.String(length=255), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('excluded', 'postponed')", name="ck_commune_holds_kind"),
        sa.CheckConstraint(
            "(kind = 'postponed') = (voting_opens_at IS NOT NULL AND voting_closes_at IS NOT NULL)"
            " AND (voting_opens_at IS NULL OR voting_opens_at < voting_closes_at)",
            name="ck_commune_holds_window",
        ),
        sa.CheckConstraint("length(reason) > 0", name="ck_commune_holds_reason"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_commune_holds_commune",
        ),
        sa.PrimaryKeyConstraint("consultation_id", "commune_id"),
    )


def _assemblies() -> None:
    op.create_table(
        "assembly_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("council_id", sa.Uuid(), nullable=True),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("attendance", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Text(), nullable=False),
        sa.Column("minutes_sha256", sa.String(length=64), nullable=True),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("attendance >= 0", name="ck_assembly_sessions_attendance"),
        sa.CheckConstraint("minutes_sha256 ~ '^[0-9a-f]{64}$'", name="ck_assembly_sessions_sha256"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_assembly_sessions_commune",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_assembly_sessions_commune", "assembly_sessions", ["consultation_id", "commune_id", "held_at"])
    op.create_table(
        "proposals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("estimated_cost", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("proposing_council_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(CATEGORIES, name="ck_proposals_category"),
        sa.CheckConstraint("estimated_cost > 0", name="ck_proposals_cost"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_proposals_currency"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_proposals_commune",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["assembly_sessions.id"], name="fk_proposals_session", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_proposals_commune", "proposals", ["consultation_id", "commune_id"])
    op.create_table(
        "prioritisations",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("proposal_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_prioritisations_commune",
        ),
        sa.PrimaryKeyConstraint("consultation_id", "commune_id"),
    )


def _candidates() -> None:
    op.add_column("candidates", sa.Column("category", sa.String(length=32), nullable=True))
    op.add_column("candidates", sa.Column("estimated_cost", sa.BigInteger(), nullable=True))
    op.add_column("candidates", sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False))
    op.add_column("candidates", sa.Column("proposal_id", sa.Uuid(), nullable=True))
    op.add_column("candidates", sa.Column("proposing_council_id", sa.Uuid(), nullable=True))
    op.create_foreign_key("fk_candidates_proposal", "candidates", "proposals", ["proposal_id"], ["id"])
    op.execute(
        "ALTER TABLE candidates ADD CONSTRAINT ck_candidates_costed"
        " CHECK (category IS NOT NULL AND estimated_cost IS NOT NULL) NOT VALID"
    )
    op.create_check_constraint("ck_candidates_category", "candidates", CATEGORIES)
    op.create_check_constraint("ck_candidates_cost", "candidates", "estimated_cost > 0")
    op.create_check_constraint("ck_candidates_currency", "candidates", "currency ~ '^[A-Z]{3}$'")


def upgrade() -> None:
    _schedule()
    _assemblies()
    _candidates()


def downgrade() -> None:
    for name in ("ck_candidates_currency", "ck_candidates_cost", "ck_candidates_category", "ck_candidates_costed"):
        op.drop_constraint(name, "candidates", type_="check")
    op.drop_constraint("fk_candidates_proposal", "candidates", type_="foreignkey")
    for column in ("proposing_council_id", "proposal_id", "currency", "estimated_cost", "category"):
        op.drop_column("candidates", column)
    op.drop_table("prioritisations")
    op.drop_index("ix_proposals_commune", table_name="proposals")
    op.drop_table("proposals")
    op.drop_index("ix_assembly_sessions_commune", table_name="assembly_sessions")
    op.drop_table("assembly_sessions")
    op.drop_table("commune_holds")
    op.drop_index("ix_schedule_amendments_consultation", table_name="schedule_amendments")
    op.drop_table("schedule_amendments")
    for name in ("ck_consultations_currency", "ck_consultations_funds", "ck_consultations_max_candidates"):
        op.drop_constraint(name, "consultations", type_="check")
    for column in ("funds_currency", "funds_per_commune", "max_candidates"):
        op.drop_column("consultations", column)
    op.drop_constraint("ck_consultations_status", "consultations", type_="check")
    op.drop_constraint("ck_consultations_schedule", "consultations", type_="check")
    op.execute("UPDATE consultations SET status = 'assembly' WHERE status = 'open'")
    op.create_check_constraint(
        "ck_consultations_status", "consultations", "status IN ('assembly', 'voting', 'closed', 'certified')"
    )
    op.create_check_constraint(
        "ck_consultations_schedule",
        "consultations",
        "assemblies_open_at < voting_opens_at AND voting_opens_at < voting_closes_at",
    )
    for column in ("certification_opens_at", "roll_cutoff_at", "candidates_close_at"):
        op.drop_column("consultations", column)
