"""Outbox -> JetStream -> inbox against real PostgreSQL and NATS, including crashes and retries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, update

from comuna.identity.v1 import events_pb2
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.db import Database
from comuna_platform.events import ConsumerPolicy, EventConsumer, EventHandler, OutboxRelay, ReceivedEvent, stage_event
from comuna_platform.events.envelope import Envelope
from comuna_platform.events.streams import ensure_stream
from comuna_platform.events.tables import events_metadata, outbox_table, parked_table
from comuna_platform.uow import UnitOfWork

pytestmark = pytest.mark.asyncio

test_metadata = MetaData()
effects = Table(
    "effects",
    test_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("resident_id", String(64), nullable=False),
)


@pytest_asyncio.fixture(scope="module")
async def db(embedded_postgres: EmbeddedPostgres) -> AsyncIterator[Database]:
    name = f"events_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    database = Database(embedded_postgres.dsn(name))
    async with database.engine.begin() as conn:
        await conn.run_sync(events_metadata.create_all)
        await conn.run_sync(test_metadata.create_all)
    yield database
    await database.dispose()


@pytest_asyncio.fixture(scope="module")
async def js(embedded_nats: EmbeddedNats) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(embedded_nats.url)
    context = nc.jetstream()
    await ensure_stream(context, "identity")
    yield context
    await nc.close()


async def drained(js: JetStreamContext, consumer: str, until: Any = lambda: True) -> Any:
    """Wait (bounded) until the consumer exists and has nothing pending or unacknowledged."""
    for _ in range(400):
        try:
            info = await js.consumer_info("IDENTITY", consumer)
        except NotFoundError:
            info = None
        if info is not None and until() and info.num_pending == 0 and info.num_ack_pending == 0:
            return info
        await asyncio.sleep(0.05)
    raise AssertionError(f"consumer {consumer} did not drain")


def registered(resident: str) -> events_pb2.ResidentRegistered:
    return events_pb2.ResidentRegistered(resident_id=resident, council_id="c", commune_id="m")


async def count_effects(db: Database, resident: str) -> int:
    async with db.transaction() as session:
        query = select(func.count()).select_from(effects).where(effects.c.resident_id == resident)
        return int((await session.execute(query)).scalar_one())


async def test_event_exists_only_if_the_transaction_commits(db: Database) -> None:
    resident = uuid.uuid4().hex
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await stage_event(session, message=registered(resident), aggregate_id=resident)
            raise RuntimeError("the state change failed")
    async with db.transaction() as session:
        rows = (await session.execute(select(outbox_table).where(outbox_table.c.aggregate_id == resident))).all()
    assert rows == []


async def test_relay_publishes_once_even_after_a_crash_before_marking_sent(db: Database, js: JetStreamContext) -> None:
    resident = uuid.uuid4().hex
    async with db.transaction() as session:
        event_id = await stage_event(session, message=registered(resident), aggregate_id=resident)
    relay = OutboxRelay(db, js, source="/comuna/identity")
    before = (await js.stream_info("IDENTITY")).state.messages
    assert await relay.publish_pending() >= 1
    # Simulate a crash between publish and mark-sent: the row is unsent again and is re-published.
    async with db.transaction() as session:
        await session.execute(update(outbox_table).where(outbox_table.c.event_id == event_id).values(published_at=None))
    assert await relay.publish_pending() == 1
    after = (await js.stream_info("IDENTITY")).state.messages
    assert after - before == 1  # JetStream dropped the re-publish: same Nats-Msg-Id
    stored = await js.get_last_msg("IDENTITY", "identity.resident.registered")
    headers = dict(stored.headers or {})
    envelope = Envelope.from_headers(headers)
    assert envelope.event_id == event_id
    assert envelope.event_type == "comuna.identity.v1.ResidentRegistered"
    assert headers["ce-subject"] == resident
    assert events_pb2.ResidentRegistered.FromString(stored.data or b"").resident_id == resident


async def test_consumer_applies_each_event_once_and_retries_failures(db: Database, js: JetStreamContext) -> None:
    resident = uuid.uuid4().hex
    failures = {"left": 2}

    async def apply(uow: UnitOfWork, event: ReceivedEvent[events_pb2.ResidentRegistered]) -> None:
        if event.message.resident_id != resident:
            return
        await uow.session.execute(insert(effects).values(resident_id=event.message.resident_id))
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("transient failure after a partial write")

    consumer = EventConsumer(
        db,
        js,
        name=f"test-{uuid.uuid4().hex[:8]}",
        handlers=[EventHandler(events_pb2.ResidentRegistered, apply)],
        policy=ConsumerPolicy(redelivery_delays=(0.05,)),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        event_id = uuid.uuid4()
        envelope = Envelope(
            event_id=event_id,
            source="/comuna/identity",
            event_type="comuna.identity.v1.ResidentRegistered",
            time=datetime.now(UTC),
            subject=resident,
        )
        payload = registered(resident).SerializeToString()
        await js.publish("identity.resident.registered", payload, headers=envelope.to_headers())
        # The same event again under another message id: a redelivery as far as the consumer knows.
        again = {**envelope.to_headers(), "Nats-Msg-Id": f"again-{event_id}"}
        await js.publish("identity.resident.registered", payload, headers=again)
        await drained(js, consumer.name, until=lambda: failures["left"] == 0)
        assert failures["left"] == 0
        assert await count_effects(db, resident) == 1  # two failures rolled back, one duplicate ignored
    finally:
        stop.set()
        await task


async def _ignore(uow: UnitOfWork, event: ReceivedEvent[events_pb2.ResidentRegistered]) -> None:
    # Earlier tests' well-formed events share the subject; only the malformed one matters here.
    return None


async def test_malformed_events_are_parked_without_effect(db: Database, js: JetStreamContext) -> None:
    consumer = EventConsumer(
        db,
        js,
        name=f"test-{uuid.uuid4().hex[:8]}",
        handlers=[EventHandler(events_pb2.ResidentRegistered, _ignore)],
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        ack = await js.publish("identity.resident.registered", b"\xff", headers={"ce-specversion": "0.3"})
        info = await drained(js, consumer.name)
        assert info.num_ack_pending == 0
        assert info.num_redelivered == 0  # parked at once, not retried
        async with db.transaction() as session:
            parked = (
                (await session.execute(select(parked_table).where(parked_table.c.consumer == consumer.name)))
                .mappings()
                .all()
            )
        assert [(p["stream_seq"], p["reason"], p["payload"], p["event_id"]) for p in parked] == [
            (ack.seq, "malformed_envelope", b"\xff", None)
        ]
        assert parked[0]["headers"] == {"ce-specversion": "0.3"}
    finally:
        stop.set()
        await task
