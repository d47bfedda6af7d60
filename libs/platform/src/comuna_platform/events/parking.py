"""Parked messages: what a consumer could not apply, kept with everything needed to apply it later.

A message is parked at once when it can never be applied as it is (malformed envelope, payload
that does not decode, an event type or source that does not belong on the subject, a handler
raising `UnprocessableEvent`), and after a bounded number of failed deliveries otherwise. The
row keeps the headers, the payload and the error; the consumer logs it at ERROR and then
acknowledges the NATS message, so nothing is dropped silently and nothing blocks the stream.

`comuna_parked_messages{consumer}` (rows not yet replayed) is what an alert fires on.
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_platform.db import Database
from comuna_platform.events.tables import parked_table

log = logging.getLogger(__name__)

PARKED_GAUGE = Gauge("comuna_parked_messages", "Parked event messages not yet replayed", ["consumer"])
PARKED_TOTAL = Counter("comuna_events_parked_total", "Event messages parked", ["consumer", "reason"])
REPLAYED_TOTAL = Counter("comuna_events_replayed_total", "Parked messages replayed", ["consumer"])

# Bounds what one parked row can hold of an error text.
MAX_ERROR_LENGTH = 4000


class ParkReason(StrEnum):
    MALFORMED_ENVELOPE = "malformed_envelope"
    UNDECODABLE = "undecodable"
    UNKNOWN_TYPE = "unknown_type"
    SOURCE_MISMATCH = "source_mismatch"
    UNPROCESSABLE = "unprocessable"
    HANDLER_FAILED = "handler_failed"


@dataclass(frozen=True)
class ParkedMessage:
    id: int
    consumer: str
    stream: str
    subject: str
    stream_seq: int
    event_id: uuid.UUID | None
    event_type: str | None
    reason: str
    headers: dict[str, str]
    payload: bytes
    error: str
    deliveries: int
    parked_at: datetime
    replayed_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> ParkedMessage:
        return cls(**{column: row[column] for column in cls.__dataclass_fields__})

    def summary(self) -> dict[str, Any]:
        """JSON-ready, without headers and payload (for listings)."""
        return {
            "id": self.id,
            "consumer": self.consumer,
            "stream": self.stream,
            "subject": self.subject,
            "stream_seq": self.stream_seq,
            "event_id": str(self.event_id) if self.event_id else None,
            "event_type": self.event_type,
            "reason": self.reason,
            "error": self.error,
            "deliveries": self.deliveries,
            "parked_at": self.parked_at.isoformat(),
            "replayed_at": self.replayed_at.isoformat() if self.replayed_at else None,
        }

    def detail(self) -> dict[str, Any]:
        """JSON-ready, with the headers and the payload (base64)."""
        return {**self.summary(), "headers": self.headers, "payload_base64": base64.b64encode(self.payload).decode()}


@dataclass(frozen=True)
class Delivery:
    """What a consumer knows of the NATS message it parks."""

    consumer: str
    stream: str
    subject: str
    stream_seq: int
    headers: dict[str, str]
    payload: bytes
    deliveries: int


async def park(
    db: Database,
    delivery: Delivery,
    *,
    reason: ParkReason,
    error: str,
    event_id: uuid.UUID | None = None,
    event_type: str | None = None,
) -> None:
    """Keep the message (once per consumer and stream sequence) and log it at ERROR."""
    async with db.transaction() as session:
        await session.execute(
            insert(parked_table)
            .values(
                consumer=delivery.consumer,
                stream=delivery.stream,
                subject=delivery.subject,
                stream_seq=delivery.stream_seq,
                event_id=event_id,
                event_type=event_type,
                reason=reason.value,
                headers=delivery.headers,
                payload=delivery.payload,
                error=error[:MAX_ERROR_LENGTH],
                deliveries=delivery.deliveries,
            )
            .on_conflict_do_nothing(constraint="uq_parked_messages_delivery")
        )
        unreplayed = await _unreplayed(session, delivery.consumer)
    PARKED_TOTAL.labels(delivery.consumer, reason.value).inc()
    PARKED_GAUGE.labels(delivery.consumer).set(unreplayed)
    log.error(
        "event parked: %s",
        error[:500],
        extra={
            "consumer": delivery.consumer,
            "event_id": str(event_id) if event_id else None,
            "event_type": event_type,
            "subject": delivery.subject,
            "stream_seq": delivery.stream_seq,
            "reason": reason.value,
            "deliveries": delivery.deliveries,
        },
    )


async def _unreplayed(session: AsyncSession, consumer: str) -> int:
    query = select(func.count()).where(parked_table.c.consumer == consumer, parked_table.c.replayed_at.is_(None))
    return int((await session.execute(query)).scalar_one())


async def refresh_gauge(db: Database, consumers: list[str]) -> dict[str, int]:
    """Set `comuna_parked_messages` from the database for each of `consumers` (0 when none)."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(parked_table.c.consumer, func.count())
            .where(parked_table.c.replayed_at.is_(None))
            .group_by(parked_table.c.consumer)
        )
        counts = {str(consumer): int(n) for consumer, n in rows.all()}
    result = {name: counts.get(name, 0) for name in consumers}
    for name, n in result.items():
        PARKED_GAUGE.labels(name).set(n)
    return result


async def list_parked(
    session: AsyncSession,
    *,
    consumer: str | None = None,
    include_replayed: bool = False,
    after: int = 0,
    limit: int = 50,
) -> list[ParkedMessage]:
    query = select(parked_table).where(parked_table.c.id > after).order_by(parked_table.c.id).limit(limit)
    if consumer is not None:
        query = query.where(parked_table.c.consumer == consumer)
    if not include_replayed:
        query = query.where(parked_table.c.replayed_at.is_(None))
    rows = (await session.execute(query)).mappings().all()
    return [ParkedMessage.from_row(row) for row in rows]


async def get_parked(session: AsyncSession, parked_id: int, *, for_update: bool = False) -> ParkedMessage | None:
    query = select(parked_table).where(parked_table.c.id == parked_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).mappings().first()
    return ParkedMessage.from_row(row) if row is not None else None


async def mark_replayed(session: AsyncSession, parked_id: int) -> None:
    await session.execute(update(parked_table).where(parked_table.c.id == parked_id).values(replayed_at=func.now()))
