"""Initial schema: consultations, commune snapshot, candidates, participations, ballots, results,
and the platform's outbox/inbox tables.

Ballots have no voter reference and no timestamp column by design (see storage/models.py).

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consultations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assemblies_open_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("voting_opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("voting_closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("commune_count", sa.Integer(), nullable=False),
        sa.Column("voting_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("code ~ '^[0-9]{4}-Q[1-4]$'", name="ck_consultations_code"),
        sa.CheckConstraint("status IN ('assembly', 'voting', 'closed', 'certified')", name="ck_consultations_status"),
        sa.CheckConstraint(
            "assemblies_open_at < voting_opens_at AND voting_opens_at < voting_closes_at",
            name="ck_consultations_schedule",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "consultation_communes",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"], ["consultations.id"], name="fk_consultation_communes_consultation"
        ),
        sa.PrimaryKeyConstraint("consultation_id", "commune_id"),
        sa.UniqueConstraint("consultation_id", "code", name="uq_consultation_communes_code"),
    )
    op.create_table(
        "participations",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("voter_ref", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"], name="fk_participations_consultation"),
        sa.PrimaryKeyConstraint("consultation_id", "voter_ref"),
    )
    op.create_table(
        "candidates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("assembly_priority", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("assembly_priority >= 1", name="ck_candidates_priority"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_candidates_commune",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consultation_id", "commune_id", "assembly_priority", name="uq_candidates_priority"),
        sa.UniqueConstraint("consultation_id", "commune_id", "id", name="uq_candidates_commune_id"),
    )
    op.create_table(
        "ballots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.CheckConstraint("channel IN ('table', 'online')", name="ck_ballots_channel"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id", "candidate_id"],
            ["candidates.consultation_id", "candidates.commune_id", "candidates.id"],
            name="fk_ballots_candidate",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ballots_tally", "ballots", ["consultation_id", "commune_id", "candidate_id"], unique=False)
    op.create_table(
        "results",
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("votes", sa.BigInteger(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.CheckConstraint("rank >= 1", name="ck_results_rank"),
        sa.CheckConstraint("votes >= 0", name="ck_results_votes"),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id", "candidate_id"],
            ["candidates.consultation_id", "candidates.commune_id", "candidates.id"],
            name="fk_results_candidate",
        ),
        sa.PrimaryKeyConstraint("consultation_id", "candidate_id"),
        sa.UniqueConstraint("consultation_id", "commune_id", "rank", name="uq_results_rank"),
    )
    op.create_table(
        "inbox_events",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox_events"),
    )
    op.create_table(
        "outbox_events",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("aggregate_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index(
        "ix_outbox_events_unpublished",
        "outbox_events",
        ["seq"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_outbox_events_unpublished", table_name="outbox_events", postgresql_where=sa.text("published_at IS NULL")
    )
    op.drop_table("outbox_events")
    op.drop_table("inbox_events")
    op.drop_table("results")
    op.drop_index("ix_ballots_tally", table_name="ballots")
    op.drop_table("ballots")
    op.drop_table("candidates")
    op.drop_table("participations")
    op.drop_table("consultation_communes")
    op.drop_table("consultations")
