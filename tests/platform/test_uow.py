"""The unit of work against real PostgreSQL: one transaction, staged events, after-commit hooks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from sqlalchemy import select

from comuna.identity.v1 import events_pb2
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.db import Database
from comuna_platform.events import stage_event
from comuna_platform.events.tables import events_metadata, outbox_table
from comuna_platform.events.translation import UntranslatedEvent, translates
from comuna_platform.ids import DeterministicIds
from comuna_platform.uow import Staged, UnitOfWork

pytestmark = pytest.mark.asyncio


@dataclass(frozen=True)
class Registered:
    """A domain event of this test: no protobuf in sight."""

    resident: str


@dataclass(frozen=True)
class NeverRegistered:
    resident: str


@translates(Registered)
def _registered(event: Registered) -> events_pb2.ResidentRegistered:
    return events_pb2.ResidentRegistered(resident_id=event.resident, council_id="c", commune_id="m")


@pytest_asyncio.fixture(scope="module")
async def db(embedded_postgres: EmbeddedPostgres) -> AsyncIterator[Database]:
    name = f"uow_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    database = Database(embedded_postgres.dsn(name))
    async with database.engine.begin() as conn:
        await conn.run_sync(events_metadata.create_all)
    yield database
    await database.dispose()


async def outbox_rows(db: Database, aggregate_id: str) -> list[tuple[str, str, uuid.UUID]]:
    async with db.transaction() as session:
        query = select(outbox_table.c.subject, outbox_table.c.event_type, outbox_table.c.event_id).where(
            outbox_table.c.aggregate_id == aggregate_id
        )
        return [tuple(row) for row in await session.execute(query.order_by(outbox_table.c.seq))]  # type: ignore[misc]


async def test_hooks_and_listeners_run_once_after_commit_never_after_rollback(db: Database) -> None:
    calls: list[str] = []
    remove = db.on_events_committed(lambda: calls.append("relay"))
    try:
        resident = uuid.uuid4().hex
        with pytest.raises(RuntimeError):
            async with db.unit_of_work() as uow:
                await uow.stage(Registered(resident), aggregate_id=resident)
                uow.after_commit(lambda: calls.append("cache"))
                raise RuntimeError("the change failed")
        assert calls == [] and await outbox_rows(db, resident) == []

        async with db.unit_of_work() as uow:
            uow.after_commit(lambda: calls.append("cache"))
            assert calls == []  # nothing runs before the commit
        assert calls == ["cache"]  # no events staged: the relay is not woken

        calls.clear()
        async with db.unit_of_work() as uow:
            await uow.stage(Registered(resident), aggregate_id=resident)
            uow.after_commit(lambda: calls.append("cache"))
        assert calls == ["relay", "cache"]
        assert [r[:2] for r in await outbox_rows(db, resident)] == [
            ("identity.resident.registered", "comuna.identity.v1.ResidentRegistered")
        ]
    finally:
        remove()
    calls.clear()
    async with db.unit_of_work() as uow:
        await uow.stage(Registered(uuid.uuid4().hex), aggregate_id="x")
    assert calls == []  # removed listeners are not called


async def test_a_plain_transaction_is_a_unit_of_work_too(db: Database) -> None:
    """The event consumer and older code stage on the session: the relay is still woken."""
    calls: list[str] = []
    remove = db.on_events_committed(lambda: calls.append("relay"))
    try:
        resident = uuid.uuid4().hex
        async with db.transaction() as session:
            await stage_event(session, registered := _registered(Registered(resident)), aggregate_id=resident)
            UnitOfWork.of(session).after_commit(lambda: calls.append("hook"))
        assert registered.resident_id == resident
        assert calls == ["relay", "hook"]
    finally:
        remove()


async def test_deterministic_event_ids_are_derived_from_the_contract_subject(db: Database) -> None:
    ids = DeterministicIds(uuid.UUID("0b6f3c5e-9a51-4f0e-8a53-6d2f4c1e7a90"))
    resident = uuid.uuid4().hex
    async with db.unit_of_work() as uow:
        await uow.stage_all(
            [
                Staged(Registered(resident), resident, event_id=lambda subject: ids.derive("event", subject, resident)),
                Staged(_registered(Registered(resident + "b")), resident),
            ]
        )
    rows = await outbox_rows(db, resident)
    assert rows[0][2] == ids.derive("event", "identity.resident.registered", resident)
    assert len(rows) == 2 and rows[1][2] != rows[0][2]


async def test_an_untranslated_domain_event_fails_before_anything_is_written(db: Database) -> None:
    resident = uuid.uuid4().hex
    with pytest.raises(UntranslatedEvent):
        async with db.unit_of_work() as uow:
            await uow.stage(NeverRegistered(resident), aggregate_id=resident)
    assert await outbox_rows(db, resident) == []


async def test_a_session_outside_the_platform_has_no_unit_of_work(db: Database) -> None:
    async with db.sessions() as session:
        with pytest.raises(LookupError):
            UnitOfWork.of(session)
