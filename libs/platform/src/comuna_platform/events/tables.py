"""Outbox, inbox and parked-messages tables, present in every service's database.

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
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
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

parked_table = Table(
    "parked_messages",
    events_metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("consumer", String(100), nullable=False),
    Column("stream", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    # Unknown when the envelope itself was malformed.
    Column("event_id", Uuid, nullable=True),
    Column("event_type", String(200), nullable=True),
    # Why it was parked: one of comuna_platform.events.parking.ParkReason.
    Column("reason", String(40), nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("payload", LargeBinary, nullable=False),
    Column("error", Text, nullable=False),
    Column("deliveries", Integer, nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("replayed_at", DateTime(timezone=True), nullable=True),
    # A message parked again (its ack was lost after parking) finds its row and adds none.
    UniqueConstraint("consumer", "stream", "stream_seq", name="uq_parked_messages_delivery"),
)
Index(
    "ix_parked_messages_unreplayed",
    parked_table.c.consumer,
    parked_table.c.id,
    postgresql_where=parked_table.c.replayed_at.is_(None),
)
