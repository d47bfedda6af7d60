"""Parked messages: events a consumer could not apply, kept for operators to inspect and replay.

The table is the platform's (comuna_platform.events.tables.parked_table), migrated with each
service like the outbox and inbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "parked_messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("event_type", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("headers", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("parked_messages_pkey")),
        sa.UniqueConstraint("consumer", "stream", "stream_seq", name="uq_parked_messages_delivery"),
    )
    op.create_index(
        "ix_parked_messages_unreplayed",
        "parked_messages",
        ["consumer", "id"],
        postgresql_where=sa.text("replayed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_parked_messages_unreplayed", table_name="parked_messages")
    op.drop_table("parked_messages")
