"""Transactional outbox.

`stage_event` writes the event in the caller's transaction, so the event exists if and only if
the state change that caused it was committed. `OutboxRelay` publishes committed events to
JetStream in sequence order with `Nats-Msg-Id` = event id (the server drops a re-publish after
a crash between publish and mark-sent) and then marks them sent.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from nats.js import JetStreamContext
from opentelemetry import propagate
from prometheus_client import Counter
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_platform.db import Database
from comuna_platform.events.envelope import Envelope
from comuna_platform.events.registry import subject_of
from comuna_platform.events.tables import outbox_table

log = logging.getLogger(__name__)

EVENTS_PUBLISHED = Counter("comuna_events_published_total", "Events relayed to JetStream", ["subject"])

_STAGED_KEY = "comuna_outbox_staged"


@dataclass(frozen=True)
class NewEvent:
    """An event to stage; its subject comes from the message's contract (`event_subject`)."""

    message: Message
    aggregate_id: str
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def subject(self) -> str:
        return subject_of(self.message)


# Rows per INSERT when staging many events at once (a nationwide certification stages thousands).
_STAGE_CHUNK = 1000


async def stage_events(session: AsyncSession, events: Sequence[NewEvent]) -> None:
    """Add events to the outbox, in order, inside the caller's open transaction.

    The W3C trace context of the current span is stored with each event so the consumer's span
    joins the trace of the request that caused it.
    """
    if not events:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for start in range(0, len(events), _STAGE_CHUNK):
        await session.execute(
            insert(outbox_table),
            [
                {
                    "event_id": e.event_id,
                    "subject": e.subject,
                    "event_type": e.message.DESCRIPTOR.full_name,
                    "aggregate_id": e.aggregate_id,
                    "payload": e.message.SerializeToString(deterministic=True),
                    "headers": carrier,
                }
                for e in events[start : start + _STAGE_CHUNK]
            ],
        )
    session.info[_STAGED_KEY] = True


def take_staged_flag(session: AsyncSession) -> bool:
    """Whether events were staged in this session's transaction (and forget it)."""
    return bool(session.info.pop(_STAGED_KEY, False))


async def stage_event(
    session: AsyncSession,
    message: Message,
    *,
    aggregate_id: str,
    event_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Add one event to the outbox inside the caller's open transaction; returns its id."""
    event = NewEvent(message=message, aggregate_id=aggregate_id, event_id=event_id or uuid.uuid4())
    await stage_events(session, [event])
    return event.event_id


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        js: JetStreamContext,
        *,
        source: str,
        batch_size: int = 200,
        poll_seconds: float = 0.5,
    ) -> None:
        self._db = db
        self._js = js
        self._source = source
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        # Woken as soon as a unit of work that staged events commits (the database tells every
        # listener, in this event loop), instead of waiting for the next poll.
        remove = self._db.on_events_committed(self._wake.set)
        try:
            await self._run(stop)
        finally:
            remove()

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await self.publish_pending()
            except Exception:
                log.exception("outbox relay failed; retrying")
                sent = 0
            if sent >= self._batch_size:
                continue
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=self._poll_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent events; returns how many were sent."""
        async with self._db.transaction() as session:
            rows = (
                (
                    await session.execute(
                        select(outbox_table)
                        .where(outbox_table.c.published_at.is_(None))
                        .order_by(outbox_table.c.seq)
                        .limit(self._batch_size)
                        # Several replicas may relay at once; each takes a disjoint batch.
                        .with_for_update(skip_locked=True)
                    )
                )
                .mappings()
                .all()
            )
            for row in rows:
                await self._publish(row)
            if rows:
                await session.execute(
                    update(outbox_table)
                    .where(outbox_table.c.seq.in_([row["seq"] for row in rows]))
                    .values(published_at=datetime.now(UTC))
                )
        return len(rows)

    async def _publish(self, row: Any) -> None:
        envelope = Envelope(
            event_id=row["event_id"],
            source=self._source,
            event_type=row["event_type"],
            time=row["created_at"],
            subject=row["aggregate_id"],
        )
        headers = {**envelope.to_headers(), **row["headers"]}
        await self._js.publish(row["subject"], row["payload"], headers=headers)
        EVENTS_PUBLISHED.labels(row["subject"]).inc()
