"""Builders shared by the consumer tests: a database with the platform's tables, identity events
published as identity's outbox relay would, and a consumer running in the background."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from comuna.identity.v1 import events_pb2
from comuna_platform.db import Database
from comuna_platform.events import ConsumerPolicy, EventConsumer, EventHandler, ReceivedEvent
from comuna_platform.events.envelope import Envelope
from comuna_platform.events.parking import ParkedMessage
from comuna_platform.events.tables import events_metadata, parked_table
from comuna_platform.supervision import Backoff, Supervisor, Worker
from comuna_platform.uow import UnitOfWork

T = TypeVar("T")
SUBJECT = "identity.resident.registered"
STREAM = "IDENTITY"
# Short delays so retries and parking happen within a test's patience.
FAST = ConsumerPolicy(
    max_deliveries=3,
    redelivery_delays=(0.05,),
    transient_backoff=Backoff(initial=0.05, cap=0.2),
    probe_seconds=0.5,
)

test_metadata = MetaData()
effects = Table(
    "consumer_effects",
    test_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("resident_id", String(64), nullable=False),
)


async def create_tables(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(events_metadata.create_all)
        await conn.run_sync(test_metadata.create_all)


def registered(resident: str) -> events_pb2.ResidentRegistered:
    return events_pb2.ResidentRegistered(resident_id=resident, council_id="c", commune_id="m")


def headers_for(event_type: str, *, source: str = "/comuna/identity") -> dict[str, str]:
    return Envelope(
        event_id=uuid.uuid4(),
        source=source,
        event_type=event_type,
        time=datetime.now(UTC),
        subject="aggregate",
    ).to_headers()


async def publish(
    js: JetStreamContext,
    resident: str,
    *,
    source: str = "/comuna/identity",
    subject: str = SUBJECT,
    payload: bytes | None = None,
    event_type: str = "comuna.identity.v1.ResidentRegistered",
) -> int:
    """Publish as identity's relay does; returns the stream sequence."""
    headers = headers_for(event_type, source=source)
    data = registered(resident).SerializeToString() if payload is None else payload
    ack = await js.publish(subject, data, headers=headers)
    return int(ack.seq)


def recording(resident_filter: Callable[[str], bool] = lambda _: True) -> EventHandler[Any]:
    """A handler that records each applied event in `consumer_effects`."""

    async def apply(uow: UnitOfWork, event: ReceivedEvent[events_pb2.ResidentRegistered]) -> None:
        if resident_filter(event.message.resident_id):
            await uow.session.execute(insert(effects).values(resident_id=event.message.resident_id))

    return EventHandler(events_pb2.ResidentRegistered, apply)


def new_consumer(db: Database, js: JetStreamContext, handler: EventHandler[Any], **kwargs: Any) -> EventConsumer:
    kwargs.setdefault("policy", FAST)
    return EventConsumer(db, js, name=f"test-{uuid.uuid4().hex[:8]}", handlers=[handler], **kwargs)


@asynccontextmanager
async def supervised(*consumers: EventConsumer) -> AsyncIterator[Supervisor]:
    """The consumers running under a supervisor, as a service runs them."""
    supervisor = Supervisor(asyncio.Event(), backoff=Backoff(initial=0.1, cap=0.5))
    for consumer in consumers:
        supervisor.add(Worker(f"consumer-{consumer.name}", consumer.run, consumer.health))
    tasks = supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop.set()
        await asyncio.gather(*tasks)


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, within: float = 20.0) -> T:
    """Poll `check` until it returns something other than None/False, or fail after `within` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result is not None and result is not False:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def settled(js: JetStreamContext, consumer: str, seq: int) -> ConsumerInfo:
    """Until the consumer has acknowledged everything up to stream sequence `seq`."""

    async def done() -> ConsumerInfo | None:
        try:
            info = await js.consumer_info(STREAM, consumer)
        except NotFoundError:
            return None
        floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        return info if (floor or 0) >= seq and info.num_ack_pending == 0 else None

    return await eventually(done, f"{consumer} to acknowledge up to {seq}")


async def count_effects(db: Database, resident: str) -> int:
    async with db.transaction() as session:
        query = select(func.count()).select_from(effects).where(effects.c.resident_id == resident)
        return int((await session.execute(query)).scalar_one())


async def parked_of(db: Database, consumer: str) -> list[ParkedMessage]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(parked_table).where(parked_table.c.consumer == consumer).order_by(parked_table.c.id)
        )
        return [ParkedMessage.from_row(row) for row in rows.mappings().all()]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
