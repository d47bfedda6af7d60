"""Poison messages are parked, visible and replayable: real NATS JetStream and PostgreSQL.

Each test gets its own NATS server, so a consumer (which reads its stream from the start) sees
only the messages that test published.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from comuna.identity.v1 import events_pb2
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.db import Database
from comuna_platform.errors import FailedPrecondition, NotFound
from comuna_platform.events import EventHandler, ReceivedEvent
from comuna_platform.events.parked import ParkedMessages
from comuna_platform.events.streams import ensure_stream
from comuna_platform.uow import UnitOfWork
from tests.platform.consumers import (
    SUBJECT,
    count_effects,
    create_tables,
    metric,
    new_consumer,
    parked_of,
    publish,
    recording,
    settled,
    supervised,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(scope="module")
async def db(embedded_postgres: EmbeddedPostgres) -> AsyncIterator[Database]:
    name = f"parked_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    database = Database(embedded_postgres.dsn(name))
    await create_tables(database)
    yield database
    await database.dispose()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(tmp_path / "jetstream", free_port()) as server:
        yield server


@pytest_asyncio.fixture
async def js(nats_server: EmbeddedNats) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    context = nc.jetstream()
    await ensure_stream(context, "identity")
    yield context
    await nc.close()


async def test_garbage_payload_is_parked_at_once_and_later_messages_flow(db: Database, js: JetStreamContext) -> None:
    consumer = new_consumer(db, js, recording())
    garbage_seq = await publish(js, "ignored", payload=b"\xff\xff\xff not protobuf")
    good = uuid.uuid4().hex
    async with supervised(consumer):
        last = await publish(js, good)
        info = await settled(js, consumer.name, last)
    assert await count_effects(db, good) == 1
    [parked] = await parked_of(db, consumer.name)
    assert (parked.stream, parked.subject, parked.stream_seq) == ("IDENTITY", SUBJECT, garbage_seq)
    assert (parked.reason, parked.deliveries, parked.replayed_at) == ("undecodable", 1, None)
    assert parked.payload == b"\xff\xff\xff not protobuf"
    assert parked.event_id is not None and parked.headers["ce-id"] == str(parked.event_id)
    assert parked.event_type == "comuna.identity.v1.ResidentRegistered"
    # Two messages, two deliveries: parked on first sight, then acknowledged.
    assert info.delivered is not None and info.delivered.consumer_seq == 2
    assert metric("comuna_parked_messages", consumer=consumer.name) == 1
    assert metric("comuna_events_parked_total", consumer=consumer.name, reason="undecodable") == 1


async def test_a_handler_that_keeps_failing_parks_the_message_after_the_limit(
    db: Database, js: JetStreamContext
) -> None:
    attempts: list[int] = []

    async def failing(uow: UnitOfWork, event: ReceivedEvent[events_pb2.ResidentRegistered]) -> None:
        attempts.append(1)
        raise RuntimeError("no such commune")

    consumer = new_consumer(db, js, EventHandler(events_pb2.ResidentRegistered, failing))
    async with supervised(consumer):
        seq = await publish(js, uuid.uuid4().hex)
        await settled(js, consumer.name, seq)
    assert len(attempts) == consumer.policy.max_deliveries == 3
    [parked] = await parked_of(db, consumer.name)
    assert (parked.stream_seq, parked.reason, parked.deliveries) == (seq, "handler_failed", 3)
    assert parked.error == "RuntimeError: no such commune"


async def test_replay_after_a_fix_applies_exactly_once(db: Database, js: JetStreamContext) -> None:
    resident = uuid.uuid4().hex
    broken = {"yes": True}
    record = recording()

    async def sometimes(uow: UnitOfWork, event: ReceivedEvent[events_pb2.ResidentRegistered]) -> None:
        if broken["yes"]:
            raise RuntimeError("bug")
        await record.apply(uow, event)

    consumer = new_consumer(db, js, EventHandler(events_pb2.ResidentRegistered, sometimes))
    async with supervised(consumer):
        await settled(js, consumer.name, await publish(js, resident))
    [parked] = await parked_of(db, consumer.name)
    operators = ParkedMessages(db, [consumer])
    assert [p.id for p in await operators.list_messages(consumer=consumer.name)] == [parked.id]

    # Still broken: the replay fails, nothing is applied and the row stays parked.
    with pytest.raises(FailedPrecondition, match="still fails: RuntimeError: bug"):
        await operators.replay(parked.id)
    assert (await operators.get(parked.id)).replayed_at is None

    broken["yes"] = False
    assert (await operators.replay(parked.id)).outcome == "applied"
    assert (await operators.replay(parked.id)).outcome == "already_replayed"
    assert await count_effects(db, resident) == 1
    assert (await operators.get(parked.id)).replayed_at is not None
    assert await operators.list_messages(consumer=consumer.name) == []
    assert [p.id for p in await operators.list_messages(consumer=consumer.name, include_replayed=True)] == [parked.id]
    assert metric("comuna_parked_messages", consumer=consumer.name) == 0

    # The same event delivered again (a republish) meets the inbox row the replay wrote.
    async with supervised(consumer):
        again = await js.publish(
            parked.subject, parked.payload, headers={**parked.headers, "Nats-Msg-Id": f"again-{parked.event_id}"}
        )
        await settled(js, consumer.name, again.seq)
    assert await count_effects(db, resident) == 1


async def test_an_event_from_the_wrong_source_is_parked_and_moves_nothing(db: Database, js: JetStreamContext) -> None:
    resident = uuid.uuid4().hex
    consumer = new_consumer(db, js, recording())
    async with supervised(consumer):
        forged = await publish(js, resident, source="/comuna/funding")
        await settled(js, consumer.name, forged)
    assert await count_effects(db, resident) == 0
    [parked] = await parked_of(db, consumer.name)
    assert (parked.stream_seq, parked.reason) == (forged, "source_mismatch")
    assert "from '/comuna/funding'" in parked.error and "/comuna/identity" in parked.error
    # A forged event can never be replayed into effect.
    with pytest.raises(FailedPrecondition, match="cannot be replayed"):
        await ParkedMessages(db, [consumer]).replay(parked.id)
    assert await count_effects(db, resident) == 0


async def test_types_that_do_not_belong_on_the_subject_are_parked(db: Database, js: JetStreamContext) -> None:
    consumer = new_consumer(db, js, recording())
    async with supervised(consumer):
        unknown = await publish(js, "x", event_type="comuna.identity.v1.Nonexistent")
        # A real event type, but another subject's: it cannot be the event this subject carries.
        misplaced = await publish(js, "y", event_type="comuna.identity.v1.TerritoryCreated")
        malformed = int((await js.publish("identity.resident.registered", b"", headers={"ce-id": "x"})).seq)
        await settled(js, consumer.name, malformed)
    parked = {p.stream_seq: p for p in await parked_of(db, consumer.name)}
    assert {seq: p.reason for seq, p in parked.items()} == {
        unknown: "unknown_type",
        misplaced: "source_mismatch",
        malformed: "malformed_envelope",
    }
    assert parked[malformed].event_id is None and parked[malformed].headers == {"ce-id": "x"}


async def test_unknown_ids_are_reported_as_not_found(db: Database, js: JetStreamContext) -> None:
    operators = ParkedMessages(db, [new_consumer(db, js, recording())])
    with pytest.raises(NotFound):
        await operators.get(2**62)
    with pytest.raises(NotFound):
        await operators.replay(2**62)
