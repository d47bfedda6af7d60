"""Schema steps of the platform's own tables, shared by the migrations of every service.

Each function is one frozen step: a migration calls the version it was written against, so
re-running an old migration always builds the same schema. A later change to a platform table
is a new function (`..._v2`) called by a new migration, never an edit of an existing one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def create_parked_messages_v1() -> None:
    """Parked messages: events a consumer could not apply, kept for operators to inspect and replay."""
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


def drop_parked_messages_v1() -> None:
    op.drop_index("ix_parked_messages_unreplayed", table_name="parked_messages")
    op.drop_table("parked_messages")


def create_transparency_log_v1() -> None:
    """The tables of `comuna_platform.tlog.store` (logs, entries, hash tiles)."""
    op.create_table(
        "tlog_logs",
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("integrated_size", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("integrated_size >= 0 AND integrated_size <= size", name="integrated_within_size"),
        sa.PrimaryKeyConstraint("origin", name=op.f("tlog_logs_pkey")),
    )
    op.create_table(
        "tlog_entries",
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("octet_length(data) <= 65535", name="entry_fits_a_bundle"),
        sa.PrimaryKeyConstraint("origin", "idx", name="pk_tlog_entries"),
    )
    op.create_table(
        "tlog_tiles",
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "octet_length(hashes) % 32 = 0 AND octet_length(hashes) <= 8192", name="whole_hashes_within_a_tile"
        ),
        sa.PrimaryKeyConstraint("origin", "level", "idx", name="pk_tlog_tiles"),
    )
    op.create_table(
        "tlog_checkpoints",
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("origin", "size", name="pk_tlog_checkpoints"),
    )


def create_transparency_log_cosignatures_v1() -> None:
    """`tlog_cosignatures`: the witnesses' cosignatures of a log's checkpoints."""
    op.create_table(
        "tlog_cosignatures",
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("cosigned_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("origin", "size", "key_id", name="pk_tlog_cosignatures"),
    )


def drop_transparency_log_cosignatures_v1() -> None:
    op.drop_table("tlog_cosignatures")


def drop_transparency_log_v1() -> None:
    op.drop_table("tlog_checkpoints")
    op.drop_table("tlog_tiles")
    op.drop_table("tlog_entries")
    op.drop_table("tlog_logs")
