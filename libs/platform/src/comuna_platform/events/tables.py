"""Outbox and inbox tables, present in every service's database.

They live on their own MetaData; each service's Alembic env targets it next to its own models,
so the tables are migrated with the service and never defined twice.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

events_metadata = MetaData()

outbox_table = Table(
    "outbox_events",
    events_metadata,
    # Publication order: the relay sends in sequence order.
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("subject", String(200), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("aggregate_id", String(200), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True), nullable=True),
)
Index(
    "ix_outbox_events_unpublished",
    outbox_table.c.seq,
    postgresql_where=outbox_table.c.published_at.is_(None),
)

inbox_table = Table(
    "inbox_events",
    events_metadata,
    Column("consumer", String(100), nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # One row per (consumer, event): a redelivered event finds its row and has no effect.
    PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox_events"),
)
