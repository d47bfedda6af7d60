"""Initial schema: projects, milestones, and the platform's outbox/inbox tables.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
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
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("allocation_id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("commune_code", sa.String(length=64), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("budget_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('in_progress', 'completed')", name="ck_projects_status"),
        sa.CheckConstraint("budget_minor > 0", name="ck_projects_budget_positive"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_projects_currency"),
        sa.CheckConstraint("(status = 'completed') = (completed_at IS NOT NULL)", name="ck_projects_completed_at"),
        sa.PrimaryKeyConstraint("id", name="projects_pkey"),
        sa.UniqueConstraint("allocation_id", name="projects_allocation_id_key"),
        sa.UniqueConstraint("id", "currency", name="uq_projects_id_currency"),
    )
    op.create_index("ix_projects_consultation_commune", "projects", ["consultation_id", "commune_id"])
    op.create_index("ix_projects_commune_id", "projects", ["commune_id"])

    op.create_table(
        "milestones",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("tranche_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verified_by", sa.String(length=255), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verification_note", sa.Text(), nullable=True),
        sa.Column("funded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("funded_minor", sa.BigInteger(), nullable=True),
        sa.Column("disbursement_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'verified', 'funded')", name="ck_milestones_status"),
        sa.CheckConstraint("sequence >= 1", name="ck_milestones_sequence_positive"),
        sa.CheckConstraint("tranche_minor >= 0", name="ck_milestones_tranche_not_negative"),
        sa.CheckConstraint(
            "(status = 'pending') = (verified_by IS NULL AND verified_at IS NULL AND verification_note IS NULL)",
            name="ck_milestones_verification",
        ),
        sa.CheckConstraint(
            "(status = 'funded') = (funded_at IS NOT NULL AND disbursement_id IS NOT NULL AND funded_minor IS NOT NULL)",
            name="ck_milestones_funding",
        ),
        sa.ForeignKeyConstraint(
            ["project_id", "currency"],
            ["projects.id", "projects.currency"],
            name="fk_milestones_project_currency",
        ),
        sa.PrimaryKeyConstraint("id", name="milestones_pkey"),
        sa.UniqueConstraint("project_id", "sequence", name="uq_milestones_project_sequence"),
        sa.UniqueConstraint("disbursement_id", name="milestones_disbursement_id_key"),
    )

    # The platform's transactional outbox and idempotent inbox (comuna_platform.events.tables).
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
        sa.PrimaryKeyConstraint("seq", name="outbox_events_pkey"),
        sa.UniqueConstraint("event_id", name="outbox_events_event_id_key"),
    )
    op.create_index(
        "ix_outbox_events_unpublished",
        "outbox_events",
        ["seq"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "inbox_events",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox_events"),
    )


def downgrade() -> None:
    op.drop_table("inbox_events")
    op.drop_index("ix_outbox_events_unpublished", table_name="outbox_events")
    op.drop_table("outbox_events")
    op.drop_table("milestones")
    op.drop_index("ix_projects_commune_id", table_name="projects")
    op.drop_index("ix_projects_consultation_commune", table_name="projects")
    op.drop_table("projects")
