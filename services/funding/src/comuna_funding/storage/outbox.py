"""Staging many events of one transaction at once.

`comuna_platform.events.stage_event` writes one outbox row per call; a nationwide
certification allocates to ~5,300 communes in one transaction, and one INSERT per event would
take most of the consumer's ack wait. The first event goes through `stage_event` (so the
relay is woken after commit, exactly as for any other event) and the rest are written to the
same outbox table with one multi-row INSERT per thousand events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry import propagate
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.storage.ledger_store import chunked
from comuna_platform.events import outbox_table, stage_event


@dataclass(frozen=True)
class StagedEvent:
    subject: str
    aggregate_id: str
    event_id: uuid.UUID
    message: Message


async def stage_events(session: AsyncSession, events: Sequence[StagedEvent]) -> None:
    """Add the events to the outbox, in order, inside the caller's open transaction."""
    if not events:
        return
    first, rest = events[0], events[1:]
    await stage_event(session, subject=first.subject, message=first.message, aggregate_id=first.aggregate_id,
                      event_id=first.event_id)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for part in chunked(rest, 1000):
        await session.execute(insert(outbox_table), [
            {"event_id": e.event_id, "subject": e.subject, "event_type": e.message.DESCRIPTOR.full_name,
             "aggregate_id": e.aggregate_id, "payload": e.message.SerializeToString(deterministic=True),
             "headers": carrier}
            for e in part
        ])
