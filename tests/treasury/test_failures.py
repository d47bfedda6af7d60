"""What the lead's saga relies on when a source misbehaves: a late answer is a deadline for
the caller while the reservation is recorded at the source (and a retry finds it, once); a
reservation answered RESERVED survives a SIGKILL of the treasury and commits exactly once;
SIGTERM stops the process cleanly; a database outage is UNAVAILABLE and leaves nothing half-done."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.sources import MovementKind, RemoteSource, SourceUnavailable, UnavailableCause
from tests.treasury.conftest import CURRENCY, TOKEN, TreasuryProcess, new_database

pytestmark = pytest.mark.asyncio

DELAY = "2.5"
# Well below DELAY, and long enough that the late process has surely begun the work when the
# caller gives up (it commits first and only then waits).
HURRIED = 1.0


@pytest.fixture(scope="module")
def database_url(embedded_postgres: EmbeddedPostgres) -> str:
    return new_database(embedded_postgres)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def prompt(database_url: str, log_dir: Path) -> Iterator[TreasuryProcess]:
    process = TreasuryProcess(database_url, log_dir)
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def late(database_url: str, log_dir: Path) -> Iterator[TreasuryProcess]:
    """A second treasury process on the same books that answers DELAY seconds late."""
    process = TreasuryProcess(database_url, log_dir, extra=("--delay-seconds", DELAY))
    process.start()
    try:
        yield process
    finally:
        process.kill()


async def reserve_movements(source: RemoteSource, reservation_id: uuid.UUID) -> list[MovementKind]:
    kinds: list[MovementKind] = []
    cursor = ""
    while True:
        page = await source.statement(cursor, 1000)
        kinds += [m.kind for m in page.movements if m.reservation_id == reservation_id]
        if not page.has_more:
            return kinds
        cursor = page.next_cursor


async def test_a_late_answer_is_a_deadline_but_the_reservation_is_recorded(
    prompt: TreasuryProcess, late: TreasuryProcess
) -> None:
    reservation = uuid.uuid4()
    async with RemoteSource(prompt.target, TOKEN, 10.0) as honest:
        before = await honest.check_funds()
        async with RemoteSource(late.target, TOKEN, HURRIED) as hurried:
            with pytest.raises(SourceUnavailable) as timed_out:
                await hurried.reserve(reservation, 4_000, CURRENCY, "late")
        assert timed_out.value.cause == UnavailableCause.DEADLINE_EXCEEDED
        assert timed_out.value.outcome_unknown and not timed_out.value.misconfigured
        # The caller retries the same call with a deadline the source can meet: one reservation,
        # held once, and the statement shows it (what reconciliation will read).
        async with RemoteSource(late.target, TOKEN, 10.0) as patient:
            held = await patient.reserve(reservation, 4_000, CURRENCY, "late")
        assert held.amount_minor == 4_000
        assert await reserve_movements(honest, reservation) == [MovementKind.RESERVE]
        after = await honest.check_funds()
        assert after.available_minor - before.available_minor == -4_000
        assert after.reserved_minor - before.reserved_minor == 4_000
        # The saga's way out of a timeout: cancel. Safe, and the money is back.
        cancelled = await honest.cancel(reservation)
        assert cancelled.released_minor == 4_000
    assert f"answering {DELAY} s late (testing aid)" in late.log()


async def test_a_late_answer_is_recorded_even_when_nobody_retries(
    prompt: TreasuryProcess, late: TreasuryProcess
) -> None:
    reservation = uuid.uuid4()
    async with RemoteSource(late.target, TOKEN, HURRIED) as hurried:
        with pytest.raises(SourceUnavailable):
            await hurried.reserve(reservation, 50, CURRENCY, "abandoned")
    # The late process commits before it waits; stopping it cleanly lets nothing in flight be cut.
    assert late.terminate() == 0
    async with RemoteSource(prompt.target, TOKEN, 10.0) as honest:
        assert await reserve_movements(honest, reservation) == [MovementKind.RESERVE]
        await honest.cancel(reservation)


async def test_a_reservation_survives_sigkill_and_commits_exactly_once(database_url: str, log_dir: Path) -> None:
    treasury = TreasuryProcess(database_url, log_dir)
    treasury.start()
    reservation = uuid.uuid4()
    try:
        async with RemoteSource(treasury.target, TOKEN, 10.0) as source:
            before = await source.check_funds()
            await source.reserve(reservation, 7_000, CURRENCY, "before the crash")
            treasury.kill()  # right after the answer: no shutdown of any kind
            async with RemoteSource(treasury.target, TOKEN, 1.0) as meanwhile:
                with pytest.raises(SourceUnavailable) as down:
                    await meanwhile.check_funds()
                assert down.value.outcome_unknown
            treasury.start()  # same port, same books
            first = await source.commit(reservation)
            again = await source.commit(reservation)
            assert first == again and first.committed_minor == 7_000
            assert await reserve_movements(source, reservation) == [MovementKind.RESERVE, MovementKind.COMMIT]
            after = await source.check_funds()
            assert after.available_minor - before.available_minor == -7_000
            assert after.reserved_minor == before.reserved_minor
            assert after.committed_minor - before.committed_minor == 7_000
    finally:
        treasury.kill()


async def test_sigterm_stops_cleanly(database_url: str, log_dir: Path) -> None:
    treasury = TreasuryProcess(database_url, log_dir)
    treasury.start()
    async with RemoteSource(treasury.target, TOKEN, 10.0) as source:
        await source.describe()
    assert treasury.terminate() == 0
    log = treasury.log()
    assert "stopping" in log and "stopped" in log and "Traceback" not in log


async def test_a_database_outage_is_unavailable_and_a_retry_afterwards_holds_once(
    embedded_postgres: EmbeddedPostgres, log_dir: Path
) -> None:
    url = new_database(embedded_postgres)
    name = url.rsplit("/", 1)[1]
    treasury = TreasuryProcess(url, log_dir)
    treasury.start()
    admin = create_async_engine(embedded_postgres.dsn("postgres"), isolation_level="AUTOCOMMIT")

    async def allow(connections: bool) -> None:
        async with admin.connect() as conn:
            await conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(connections).lower()}'))
            if not connections:
                terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
                await conn.execute(text(terminate), {"name": name})

    reservation = uuid.uuid4()
    try:
        async with RemoteSource(treasury.target, TOKEN, 10.0) as source:
            before = await source.check_funds()
            await allow(False)
            try:
                with pytest.raises(SourceUnavailable) as down:
                    await source.reserve(reservation, 10, CURRENCY, "during the outage")
                assert down.value.cause == UnavailableCause.UNAVAILABLE and down.value.outcome_unknown
            finally:
                await allow(True)
            held = await source.reserve(reservation, 10, CURRENCY, "during the outage")
            assert held.amount_minor == 10
            assert await reserve_movements(source, reservation) == [MovementKind.RESERVE]
            assert (await source.check_funds()).available_minor == before.available_minor - 10
        assert "database unavailable" in treasury.log()
    finally:
        treasury.kill()
        await admin.dispose()
