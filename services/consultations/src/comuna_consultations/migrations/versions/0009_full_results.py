"""Full results: per-commune certifications with versions (recounts), auditors' conflict
decisions, the consultation's tie-break and the seed of its draw.

Results certified before this revision become version 1 of their communes' certifications
(blank, null, turnout and conflicts were not counted then: stored as 0).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 23:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_TIE_BREAK = """'["lower_cost", "earlier_registration", "draw"]'::jsonb"""
DRAW_SEED = "sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8'))"


def upgrade() -> None:
    # Existing consultations get a seed too (drawn now): their voting may already be open, but
    # their results were ranked by the old rule, which the stored ranks keep.
    op.add_column(
        "consultations",
        sa.Column("tie_break", postgresql.JSONB(), server_default=sa.text(DEFAULT_TIE_BREAK), nullable=False),
    )
    op.add_column(
        "consultations",
        sa.Column("draw_seed", sa.LargeBinary(length=32), server_default=sa.text(DRAW_SEED), nullable=False),
    )

    op.create_table(
        "commune_certifications",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("supersedes", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("certified_by", sa.String(length=255), nullable=False),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ballots", sa.BigInteger(), nullable=False),
        sa.Column("blank", sa.BigInteger(), nullable=False),
        sa.Column("null_votes", sa.BigInteger(), nullable=False),
        sa.Column("participations", sa.BigInteger(), nullable=False),
        sa.Column("roll_size", sa.BigInteger(), nullable=False),
        sa.Column("conflicts", sa.BigInteger(), nullable=False),
        sa.Column("winner_candidate_id", sa.Uuid(), nullable=True),
        sa.Column("tie_break", postgresql.JSONB(), nullable=False),
        sa.Column("subtotals", postgresql.JSONB(), nullable=False),
        sa.CheckConstraint("version >= 1", name="ck_commune_certifications_version"),
        sa.CheckConstraint(
            "(version = 1 AND supersedes IS NULL) OR (supersedes = version - 1 AND length(reason) > 0)",
            name="ck_commune_certifications_recount",
        ),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_commune_certifications_commune",
        ),
        sa.PrimaryKeyConstraint("consultation_id", "commune_id", "version"),
    )
    op.create_table(
        "conflict_decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("decided_by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("conflicts", sa.BigInteger(), nullable=False),
        sa.Column("margin", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(reason) > 0", name="ck_conflict_decisions_reason"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_conflict_decisions_commune",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_conflict_decisions_commune", "conflict_decisions", ["consultation_id", "commune_id", "decided_at"]
    )

    # Certification counts per commune, channel, table and choice: an index-only scan of this one
    # index (the same number of indexes on the ballot path as before, one key wider).
    op.drop_index("ix_ballots_tally", table_name="ballots")
    op.create_index(
        "ix_ballots_tally", "ballots", ["consultation_id", "commune_id", "channel", "table_id", "candidate_id"]
    )

    # Certified results become version 1 of every commune of their (certified) consultation.
    op.execute(
        "INSERT INTO commune_certifications (consultation_id, commune_id, version, certified_by, certified_at,"
        " ballots, blank, null_votes, participations, roll_size, conflicts, winner_candidate_id, tie_break, subtotals)"
        " SELECT cc.consultation_id, cc.commune_id, 1, 'migration 0009', c.certified_at,"
        " coalesce((SELECT sum(r.votes) FROM results r"
        "   WHERE r.consultation_id = cc.consultation_id AND r.commune_id = cc.commune_id), 0), 0, 0, 0, 0, 0,"
        " (SELECT r.candidate_id FROM results r WHERE r.consultation_id = cc.consultation_id"
        "   AND r.commune_id = cc.commune_id AND r.rank = 1 AND r.votes > 0),"
        " '[\"assembly_priority\"]'::jsonb, '[]'::jsonb"
        " FROM consultation_communes cc JOIN consultations c ON c.id = cc.consultation_id"
        " WHERE c.certified_at IS NOT NULL"
    )
    op.add_column("results", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.alter_column("results", "version", server_default=None)
    op.drop_constraint("uq_results_rank", "results", type_="unique")
    op.create_unique_constraint("uq_results_rank", "results", ["consultation_id", "commune_id", "version", "rank"])
    op.drop_constraint("results_pkey", "results", type_="primary")
    op.create_primary_key("results_pkey", "results", ["consultation_id", "candidate_id", "version"])
    op.create_foreign_key(
        "fk_results_certification",
        "results",
        "commune_certifications",
        ["consultation_id", "commune_id", "version"],
        ["consultation_id", "commune_id", "version"],
    )


def downgrade() -> None:
    op.drop_index("ix_ballots_tally", table_name="ballots")
    op.create_index("ix_ballots_tally", "ballots", ["consultation_id", "commune_id", "candidate_id"])
    op.drop_constraint("fk_results_certification", "results", type_="foreignkey")
    # Only the latest version of each commune survives the way back.
    op.execute(
        "DELETE FROM results r WHERE r.version < (SELECT max(c.version) FROM commune_certifications c"
        " WHERE c.consultation_id = r.consultation_id AND c.commune_id = r.commune_id)"
    )
    op.drop_constraint("results_pkey", "results", type_="primary")
    op.create_primary_key("results_pkey", "results", ["consultation_id", "candidate_id"])
    op.drop_constraint("uq_results_rank", "results", type_="unique")
    op.create_unique_constraint("uq_results_rank", "results", ["consultation_id", "commune_id", "rank"])
    op.drop_column("results", "version")
    op.drop_index("ix_conflict_decisions_commune", table_name="conflict_decisions")
    op.drop_table("conflict_decisions")
    op.drop_table("commune_certifications")
    op.drop_column("consultations", "draw_seed")
    op.drop_column("consultations", "tie_break")
