"""Consumers that cannot die quietly: supervised restarts, NATS restarts and pauses, a PostgreSQL
outage longer than the parking limit, durable configs brought up to date, and no redelivery in a
healthy run. Real NATS JetStream and PostgreSQL servers, private to each test that breaks them."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import nats.errors
import pytest
import pytest_asyncio
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from comuna.funding.v1 import events_pb2 as funding_events
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.db import Database
from comuna_platform.events import ConsumerPolicy, EventConsumer, EventHandler, ReceivedEvent
from comuna_platform.events.streams import connect, ensure_stream
from comuna_platform.http import create_app
from comuna_platform.supervision import Backoff, Supervisor, Worker
from comuna_platform.uow import UnitOfWork
from tests.platform.consumers import (
    FAST,
    count_effects,
    create_tables,
    eventually,
    headers_for,
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
    name = f"supervision_{uuid.uuid4().hex[:8]}"
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
    # The services' own connection settings: reconnect forever.
    nc = await connect(nats_server.url, name="test-consumer")
    context = nc.jetstream()
    await ensure_stream(context, "identity")
    yield context
    await nc.close()


# --- the supervisor -----------------------------------------------------------------------------


async def test_a_failing_worker_is_logged_restarted_and_readyz_says_so_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crashing = asyncio.Event()
    crashing.set()
    runs: list[int] = []

    async def flaky(stop: asyncio.Event) -> None:
        runs.append(1)
        if crashing.is_set():
            raise ConnectionResetError("ack timed out")
        await stop.wait()

    supervisor = Supervisor(asyncio.Event(), backoff=Backoff(initial=0.05, cap=0.2))
    supervisor.add(Worker("flaky", flaky))
    checks = supervisor.readiness_checks()
    app = create_app(service="test", title="t", description="d", routers=[], readiness_checks=checks)
    tasks = supervisor.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        try:
            with caplog.at_level(logging.ERROR, logger="comuna_platform.supervision"):
                await eventually(lambda: _at_least(runs, 3), "three runs")
                response = await client.get("/readyz")
                assert response.status_code == 503
                assert response.json()["checks"] == {"worker:flaky": False}
            failures = [r for r in caplog.records if r.getMessage() == "worker failed; restarting"]
            assert failures and failures[0].__dict__["worker"] == "flaky"
            assert failures[0].__dict__["error"] == "ConnectionResetError: ack timed out"
            assert supervisor.states["flaky"].restarts >= 2
            assert metric("comuna_worker_restarts_total", worker="flaky") >= 2

            crashing.clear()
            await eventually(lambda: _ready(client), "the restarted worker to be ready")
            assert (await client.get("/readyz")).json()["checks"] == {"worker:flaky": True}
        finally:
            supervisor.stop.set()
            await asyncio.gather(*tasks)
    assert not supervisor.states["flaky"].running


async def _at_least(items: list[int], n: int) -> bool:
    return len(items) >= n


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial=0.5, cap=30.0)
    assert [backoff.delay(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


# --- NATS going away ----------------------------------------------------------------------------


async def test_consumption_goes_on_after_nats_restarts(
    db: Database, js: JetStreamContext, nats_server: EmbeddedNats
) -> None:
    consumer = new_consumer(db, js, recording())
    before, after = uuid.uuid4().hex, uuid.uuid4().hex
    async with supervised(consumer) as supervisor:
        await settled(js, consumer.name, await publish(js, before))
        nats_server.stop()
        nats_server.start()  # same port, same JetStream store
        seq = await eventually(lambda: _publish_when_back(js, after), "NATS to accept publishes again")
        await settled(js, consumer.name, seq)
        assert supervisor.problem(f"consumer-{consumer.name}") is None
    assert (await count_effects(db, before), await count_effects(db, after)) == (1, 1)


async def _publish_when_back(js: JetStreamContext, resident: str) -> int | None:
    try:
        return await publish(js, resident)
    except Exception:
        return None


async def test_consumption_goes_on_after_nats_is_paused(
    db: Database, js: JetStreamContext, nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = new_consumer(db, js, recording())
    before, after = uuid.uuid4().hex, uuid.uuid4().hex
    pid = nats_server._process.pid if nats_server._process else None
    assert pid is not None
    async with supervised(consumer):
        await settled(js, consumer.name, await publish(js, before))
        with caplog.at_level(logging.WARNING, logger="comuna_platform.events.consumer"):
            os.kill(pid, signal.SIGSTOP)
            try:
                # Paused until the consumer has noticed: its probe of the server went unanswered.
                await eventually(lambda: _logged(caplog, "NATS does not answer"), "the consumer to notice", within=15)
            finally:
                os.kill(pid, signal.SIGCONT)
        await settled(js, consumer.name, await publish(js, after))
    assert (await count_effects(db, before), await count_effects(db, after)) == (1, 1)


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def test_a_durable_created_with_an_old_config_is_updated(db: Database, js: JetStreamContext) -> None:
    consumer = new_consumer(db, js, recording())
    # What the consumer used to create: a back-off list that replaced ack_wait, and max_deliver
    # after which JetStream silently dropped a message.
    await js.add_consumer(
        "IDENTITY",
        ConsumerConfig(
            durable_name=consumer.name,
            filter_subject="identity.resident.registered",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=30,
            max_deliver=20,
            backoff=[0.2, 1, 5, 15],
        ),
    )
    resident = uuid.uuid4().hex
    async with supervised(consumer):
        await settled(js, consumer.name, await publish(js, resident))
    config = (await js.consumer_info("IDENTITY", consumer.name)).config
    assert (config.max_deliver, config.backoff, config.ack_wait) == (-1, None, consumer.policy.ack_wait)
    assert await count_effects(db, resident) == 1


async def test_a_failed_acknowledgement_neither_stops_the_consumer_nor_applies_twice(
    db: Database, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ack of an applied event is lost (as during a NATS pause): JetStream redelivers it after
    ack_wait, the inbox absorbs it, and the events after it flow without any restart."""
    consumer = new_consumer(db, js, recording(), policy=dataclasses.replace(FAST, ack_wait=1.0))
    real_ack = Msg.ack_sync
    lost: list[int] = []

    async def lossy_ack(msg: Msg, timeout: float = 1.0) -> Msg:  # noqa: ASYNC109 - Msg.ack_sync's signature
        if not lost:
            lost.append(msg.metadata.sequence.stream)
            raise nats.errors.TimeoutError
        return await real_ack(msg, timeout)

    monkeypatch.setattr(Msg, "ack_sync", lossy_ack)
    first, later = uuid.uuid4().hex, uuid.uuid4().hex
    async with supervised(consumer) as supervisor:
        await publish(js, first)
        seq = await publish(js, later)
        info = await settled(js, consumer.name, seq)
        assert supervisor.states[f"consumer-{consumer.name}"].restarts == 0
    # Deliveries, redeliveries included (num_redelivered only counts those still unacknowledged).
    assert lost and info.delivered is not None and info.delivered.consumer_seq == 3
    assert (await count_effects(db, first), await count_effects(db, later)) == (1, 1)


async def test_waiting_for_a_producer_that_starts_later_is_not_a_stall(
    db: Database, js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    applied: list[str] = []

    async def note(uow: UnitOfWork, event: ReceivedEvent[funding_events.AllocationCreated]) -> None:
        applied.append(event.message.allocation_id)

    consumer = EventConsumer(
        db,
        js,
        name=f"test-{uuid.uuid4().hex[:8]}",
        handlers=[EventHandler(funding_events.AllocationCreated, note)],
        policy=dataclasses.replace(FAST, stall_seconds=1.0),
    )
    with caplog.at_level(logging.INFO, logger="comuna_platform.events.consumer"):
        async with supervised(consumer) as supervisor:
            # FUNDING does not exist yet: the consumer waits well past its stall limit...
            await eventually(lambda: _logged_times(caplog, "waiting for stream", 3), "three waits", within=30)
            assert supervisor.problem(f"consumer-{consumer.name}") is None
            # ...and consumes once the producer has created its stream.
            await ensure_stream(js, "funding")
            allocation = str(uuid.uuid4())
            message = funding_events.AllocationCreated(allocation_id=allocation)
            headers = headers_for(message.DESCRIPTOR.full_name, source="/comuna/funding")
            await js.publish("funding.allocation.created", message.SerializeToString(), headers=headers)
            await eventually(lambda: _contains(applied, allocation), "the allocation to be applied")


async def _logged_times(caplog: pytest.LogCaptureFixture, text: str, n: int) -> bool:
    return sum(text in record.getMessage() for record in caplog.records) >= n


async def _contains(items: list[str], item: str) -> bool:
    return item in items


# --- a healthy run ------------------------------------------------------------------------------


async def test_a_healthy_run_has_no_redeliveries(db: Database, js: JetStreamContext) -> None:
    consumer = new_consumer(db, js, recording(), policy=ConsumerPolicy())
    residents = [uuid.uuid4().hex for _ in range(400)]
    async with supervised(consumer):
        last = 0
        for resident in residents:
            last = await publish(js, resident)
        info = await settled(js, consumer.name, last)
    # Deliveries, redeliveries included: exactly one per event (num_redelivered would only count
    # redelivered messages still unacknowledged).
    assert info.delivered is not None and info.delivered.consumer_seq == len(residents)
    assert [await count_effects(db, r) for r in residents[::50]] == [1] * 8
    assert await parked_of(db, consumer.name) == []


# --- PostgreSQL going away ----------------------------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[EmbeddedPostgres]:
    """A cluster of its own, to stop and start without disturbing the other tests."""
    base = Path(tempfile.mkdtemp(prefix="comuna-pg-outage-"))
    base.chmod(0o755)
    try:
        with EmbeddedPostgres(base / "data", free_port(), fast=True) as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def test_a_database_outage_is_waited_out_past_the_parking_limit_without_parking(
    private_postgres: EmbeddedPostgres, js: JetStreamContext
) -> None:
    private_postgres.create_database("outage")
    db = Database(private_postgres.dsn("outage"), pool_size=2)
    try:
        await create_tables(db)
        consumer = new_consumer(db, js, recording())
        resident = uuid.uuid4().hex
        async with supervised(consumer):
            await settled(js, consumer.name, await publish(js, uuid.uuid4().hex))
            private_postgres.stop()
            retried = metric("comuna_event_retries_total", consumer=consumer.name, kind="transient")
            seq = await publish(js, resident)
            limit = FAST.max_deliveries
            await eventually(
                lambda: _retried_more_than(consumer.name, retried + 2 * limit), "retries past the parking limit"
            )
            info = await js.consumer_info("IDENTITY", consumer.name)
            assert info.num_ack_pending == 1 and info.num_redelivered == 0  # held, kept alive, not redelivered
            private_postgres.start()
            info = await settled(js, consumer.name, seq)
        assert info.delivered is not None and info.delivered.consumer_seq == 2  # each message delivered once
        assert await count_effects(db, resident) == 1
        assert await parked_of(db, consumer.name) == []
    finally:
        await db.dispose()


async def _retried_more_than(consumer: str, n: float) -> bool:
    return metric("comuna_event_retries_total", consumer=consumer, kind="transient") > n


async def test_stop_while_waiting_out_an_outage_leaves_the_message_for_later(
    private_postgres: EmbeddedPostgres, nats_server: EmbeddedNats
) -> None:
    private_postgres.create_database("stopping")
    db = Database(private_postgres.dsn("stopping"), pool_size=2)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        await ensure_stream(js, "identity")
        await create_tables(db)
        consumer = new_consumer(db, js, recording())
        private_postgres.stop()
        async with supervised(consumer):
            await publish(js, uuid.uuid4().hex)
            await eventually(lambda: _retried_more_than(consumer.name, 0), "a transient retry")
        # The supervisor stopped it cleanly; the message is unacknowledged, not lost.
        info = await js.consumer_info("IDENTITY", consumer.name)
        assert info.num_ack_pending + info.num_pending == 1
    finally:
        await nc.close()
        await db.dispose()
