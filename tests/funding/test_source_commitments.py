"""The remote commitments saga against the reference treasury run as a separate process
(`comuna-treasury`, as in tests/treasury): a reserving allocation is posted once on the source's
commit, voided on its refusal, failed (cancel sent, flagged) when the source never answers in
time, flagged when the source commits after the ledger gave up; and a treasury killed in the
middle of a reservation leaves the ledger consistent, the reservation posted or voided exactly
once after it comes back, with the treasury's own balance in agreement.

Each test gets its own funding database (the saga drives every reserving allocation it finds);
the treasury's books are shared, so its balances are compared before and after."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

# Imported for its effect: the domain's events get their event messages (as service.py does).
import comuna_funding.messages  # noqa: F401
from comuna.funding.v1 import events_pb2 as funding_events
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.commitments import SourceCommitments, SourceDirectory
from comuna_funding.domain import ids, ledger
from comuna_funding.domain.expiry import PendingExpiry
from comuna_funding.domain.ledger import AccountSpec, NewTransfer
from comuna_funding.sources import MovementKind, RemoteSource, SourceFunds
from comuna_funding.storage import commitments as commitments_store
from comuna_funding.storage import ledger_store
from comuna_funding.storage.ledger_store import TransferRow
from comuna_funding.storage.models import Allocation, Funder, SourceCall
from comuna_funding.vocabulary import (
    AccountKind,
    AllocationStatus,
    CommitmentReason,
    FunderKind,
    SourceCallOutcome,
    SourceOperation,
    TransferKind,
)
from comuna_platform.db import Database
from comuna_platform.events.tables import outbox_table
from tests.funding.conftest import MIGRATIONS
from tests.support.service import fresh_database
from tests.treasury.conftest import CURRENCY, TOKEN, TreasuryProcess, new_database

pytestmark = pytest.mark.asyncio

CREDENTIALS = {"treasury": SecretStr(TOKEN)}
# Within a call's deadline (plus the saga's margin) of a short pending timeout, no call starts.
SHORT_TIMEOUT = 5


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def ledger_db_url(embedded_postgres: EmbeddedPostgres) -> str:
    return fresh_database(embedded_postgres, f"funding_sc_{uuid.uuid4().hex[:12]}", MIGRATIONS)


@pytest_asyncio.fixture
async def db(ledger_db_url: str) -> AsyncIterator[Database]:
    database = Database(ledger_db_url, pool_size=10)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture(scope="module")
def treasury_url(embedded_postgres: EmbeddedPostgres) -> str:
    return new_database(embedded_postgres)


@pytest.fixture(scope="module")
def treasury(treasury_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TreasuryProcess]:
    """A prompt treasury on the module's books: the funder of most tests, and the honest view
    of the books for every test."""
    process = TreasuryProcess(treasury_url, tmp_path_factory.mktemp("treasury"))
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest_asyncio.fixture
async def books(treasury: TreasuryProcess) -> AsyncIterator[RemoteSource]:
    async with RemoteSource(treasury.target, TOKEN, 10.0) as client:
        yield client


def saga(db: Database, credentials: dict[str, SecretStr] | None = None) -> SourceCommitments:
    # No back-off between rounds: each test drives its rounds itself.
    return SourceCommitments(db, SourceDirectory(credentials or CREDENTIALS), retry_seconds=(0.0, 0.0))


# --- builders and readers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reserved:
    allocation_id: uuid.UUID
    pending_id: uuid.UUID
    funder: str
    source_account_id: uuid.UUID
    commitment_account_id: uuid.UUID
    amount: int


async def remote_funder(
    db: Database, target: str, *, deadline_ms: int = 5000, credentials_ref: str = "treasury"
) -> str:
    name = f"state_{uuid.uuid4().hex[:8]}"
    async with db.transaction() as session:
        session.add(
            Funder(
                name=name,
                display_name="Tesorería de prueba",
                kind=FunderKind.REMOTE.value,
                currency=CURRENCY,
                territory_code="VE.01",
                endpoint=target,
                credentials_ref=credentials_ref,
                tls=False,
                deadline_ms=deadline_ms,
            )
        )
    return name


async def reserving_allocation(db: Database, funder: str, amount: int, *, timeout_seconds: int = 900) -> Reserved:
    """What `domain.cofunding` makes for a remote funder: a pending transfer from the funder's
    source to the allocation's commitment account, and the allocation `reserving`."""
    allocation_id, pending_id = uuid.uuid4(), uuid.uuid4()
    consultation_id, candidate_id = uuid.uuid4(), uuid.uuid4()
    source = AccountSpec(key=f"source:{funder}:{CURRENCY}", currency=CURRENCY, kind=AccountKind.SOURCE)
    commitment = AccountSpec(
        key=f"allocation:{allocation_id}",
        currency=CURRENCY,
        kind=AccountKind.COMMITMENT,
        debits_must_not_exceed_credits=True,
    )
    async with db.transaction() as session:
        await ledger.ensure_accounts(session, [source, commitment])
        await ledger.create_transfers(
            session,
            [
                NewTransfer(
                    id=pending_id,
                    debit_account_id=source.id,
                    credit_account_id=commitment.id,
                    amount=amount,
                    currency=CURRENCY,
                    code="grant_commitment",
                    reference=f"consultation:{consultation_id} commune:MU0042 candidate:{candidate_id}",
                    kind=TransferKind.PENDING,
                    timeout_seconds=timeout_seconds,
                )
            ],
        )
        session.add(
            Allocation(
                id=allocation_id,
                consultation_id=consultation_id,
                commune_id=uuid.uuid4(),
                commune_code="MU0042",
                candidate_id=candidate_id,
                title="Techo de la escuela",
                amount_minor=amount,
                currency=CURRENCY,
                funding_source=funder,
                account_id=commitment.id,
                transfer_id=pending_id,
                rank=1,
                status=AllocationStatus.RESERVING.value,
            )
        )
    return Reserved(allocation_id, pending_id, funder, source.id, commitment.id, amount)


async def allocation(db: Database, r: Reserved) -> Allocation:
    async with db.transaction() as session:
        row = await session.get(Allocation, r.allocation_id)
    assert row is not None
    return row


async def calls(db: Database, r: Reserved) -> list[SourceCall]:
    async with db.transaction() as session:
        return await commitments_store.source_calls_of(session, r.allocation_id)


def summary(rows: list[SourceCall]) -> list[tuple[str, str, bool]]:
    return [(c.operation, c.outcome, c.needs_reconciliation) for c in rows]


async def resolutions(db: Database, r: Reserved) -> list[TransferRow]:
    """Every transfer that resolves the allocation's pending commitment (at most one, ever)."""
    async with db.transaction() as session:
        result = await session.execute(text("SELECT id FROM transfers WHERE pending_id = :p"), {"p": r.pending_id})
        found = await ledger_store.transfers_by_ids(session, list(result.scalars().all()))
    return list(found.values())


async def balances(db: Database, r: Reserved) -> tuple[tuple[int, int], tuple[int, int]]:
    """(credits_posted, credits_pending) of the commitment, (debits_posted, debits_pending) of the source."""
    async with db.transaction() as session:
        commitment = await ledger_store.account_by_id(session, r.commitment_account_id)
        source = await ledger_store.account_by_id(session, r.source_account_id)
    assert commitment is not None and source is not None
    return (commitment.credits_posted, commitment.credits_pending), (source.debits_posted, source.debits_pending)


async def assert_sound(db: Database) -> None:
    """The auditor: every account's totals equal its transfers, and every currency balances."""
    async with db.transaction() as session:
        assert await ledger.audit(session) == []
        totals = await ledger.ledger_totals(session)
    assert totals and all(t.balanced for t in totals), totals


async def movements(source: RemoteSource, reservation_id: uuid.UUID) -> list[MovementKind]:
    kinds: list[MovementKind] = []
    cursor = ""
    while True:
        page = await source.statement(cursor, 1000)
        kinds += [m.kind for m in page.movements if m.reservation_id == reservation_id]
        if not page.has_more:
            return kinds
        cursor = page.next_cursor


def funds_moved(before: SourceFunds, after: SourceFunds) -> tuple[int, int, int]:
    return (
        after.available_minor - before.available_minor,
        after.reserved_minor - before.reserved_minor,
        after.committed_minor - before.committed_minor,
    )


async def expire(db: Database, r: Reserved) -> TransferRow:
    """Wait out the pending commitment's timeout, then run the ledger's expiry worker once."""
    async with db.transaction() as session:
        pending = (await ledger_store.transfers_by_ids(session, [r.pending_id]))[r.pending_id]
        now = await ledger_store.transaction_time(session)
    assert pending.timeout_seconds is not None
    left = (pending.created_at + timedelta(seconds=pending.timeout_seconds) - now).total_seconds()
    if left > 0:
        await asyncio.sleep(left + 0.05)  # the timeout itself, not a guess
    assert await PendingExpiry(db, 1.0).expire_once() >= 1
    [resolution] = await resolutions(db, r)
    assert resolution.kind == TransferKind.EXPIRE
    return resolution


async def outbox_event(db: Database, r: Reserved) -> funding_events.AllocationCreated | None:
    event_id = ids.event_id_for("funding.allocation.created", r.allocation_id)
    async with db.transaction() as session:
        rows = (await session.execute(select(outbox_table).where(outbox_table.c.event_id == event_id))).all()
    assert len(rows) <= 1
    return funding_events.AllocationCreated.FromString(rows[0].payload) if rows else None


# --- the paths --------------------------------------------------------------------------------


async def test_a_commit_posts_the_pending_commitment_once_and_announces_the_allocation(
    db: Database, treasury: TreasuryProcess, books: RemoteSource
) -> None:
    funder = await remote_funder(db, treasury.target)
    r = await reserving_allocation(db, funder, 25_000)
    assert await balances(db, r) == ((0, 25_000), (0, 25_000))
    before = await books.check_funds()

    assert await saga(db).drive_once() == 1

    row = await allocation(db, r)
    assert row.status == AllocationStatus.COMMITTED
    assert row.resolution_transfer_id == ids.commitment_post_id_for(r.allocation_id) and row.reason is None
    [post] = await resolutions(db, r)
    assert (post.id, post.kind, post.amount) == (row.resolution_transfer_id, TransferKind.POST, 25_000)
    assert await balances(db, r) == ((25_000, 0), (25_000, 0))
    # The treasury: reserved, then committed, once.
    assert await movements(books, r.pending_id) == [MovementKind.RESERVE, MovementKind.COMMIT]
    assert funds_moved(before, await books.check_funds()) == (-25_000, 0, 25_000)
    assert summary(await calls(db, r)) == [("reserve", "ok", False), ("commit", "ok", False)]
    event = await outbox_event(db, r)
    assert event is not None
    assert (event.allocation_id, event.transfer_id, event.funding_source) == (
        str(r.allocation_id),
        str(r.pending_id),
        funder,
    )
    assert (event.amount.amount_minor, event.amount.currency, event.commune_code) == (25_000, CURRENCY, "MU0042")
    # Nothing is left to drive; a second worker finds nothing either.
    assert await saga(db).drive_once() == 0
    assert len(await resolutions(db, r)) == 1
    await assert_sound(db)


async def test_two_workers_at_once_post_once(db: Database, treasury: TreasuryProcess, books: RemoteSource) -> None:
    funder = await remote_funder(db, treasury.target)
    r = await reserving_allocation(db, funder, 1_500)
    before = await books.check_funds()
    settled = await asyncio.gather(saga(db).drive_once(), saga(db).drive_once(), saga(db).drive_once())
    assert sum(settled) == 1
    assert (await allocation(db, r)).status == AllocationStatus.COMMITTED
    assert [t.kind for t in await resolutions(db, r)] == [TransferKind.POST]
    assert await movements(books, r.pending_id) == [MovementKind.RESERVE, MovementKind.COMMIT]
    assert funds_moved(before, await books.check_funds()) == (-1_500, 0, 1_500)
    assert await outbox_event(db, r) is not None
    await assert_sound(db)


async def test_a_refusal_voids_the_pending_commitment(
    db: Database, treasury: TreasuryProcess, books: RemoteSource
) -> None:
    funder = await remote_funder(db, treasury.target)
    r = await reserving_allocation(db, funder, 10**12)  # far more than the treasury holds
    before = await books.check_funds()

    assert await saga(db).drive_once() == 1

    row = await allocation(db, r)
    assert (row.status, row.reason) == (AllocationStatus.REFUSED, "insufficient_funds")
    [void] = await resolutions(db, r)
    assert (void.id, void.kind) == (ids.commitment_void_id_for(r.allocation_id), TransferKind.VOID)
    assert row.resolution_transfer_id == void.id
    assert await balances(db, r) == ((0, 0), (0, 0))
    assert summary(await calls(db, r)) == [("reserve", "refused", False)]
    assert "insufficient_funds" in (await calls(db, r))[0].detail
    assert await movements(books, r.pending_id) == []  # a refusal holds nothing
    assert funds_moved(before, await books.check_funds()) == (0, 0, 0)
    assert await outbox_event(db, r) is None
    await assert_sound(db)


async def test_a_source_too_slow_for_its_deadline_stays_reserving_then_fails_and_is_cancelled(
    db: Database, treasury_url: str, tmp_path: Path, books: RemoteSource
) -> None:
    # Answers 2 s after the work is durable; the funder's deadline is 0.5 s.
    late = TreasuryProcess(treasury_url, tmp_path, extra=("--delay-seconds", "2"))
    late.start()
    try:
        funder = await remote_funder(db, late.target, deadline_ms=500)
        r = await reserving_allocation(db, funder, 4_000, timeout_seconds=SHORT_TIMEOUT)
        before = await books.check_funds()

        assert await saga(db).drive_once() == 0
        assert (await allocation(db, r)).status == AllocationStatus.RESERVING
        assert await balances(db, r) == ((0, 4_000), (0, 4_000))
        [first] = await calls(db, r)
        assert (first.operation, first.outcome, first.needs_reconciliation) == ("reserve", "unavailable", False)
        assert "deadline_exceeded" in first.detail
        # The treasury recorded the reservation all the same (it answers late, not never).
        assert await movements(books, r.pending_id) == [MovementKind.RESERVE]

        expired = await expire(db, r)
        assert await saga(db).drive_once() == 1
        # Calls in flight finish before a clean stop: the late cancel is applied by now.
        assert late.terminate() == 0
    finally:
        late.kill()

    row = await allocation(db, r)
    assert (row.status, row.reason, row.resolution_transfer_id) == (
        AllocationStatus.FAILED,
        CommitmentReason.TIMED_OUT,
        expired.id,
    )
    assert summary(await calls(db, r)) == [("reserve", "unavailable", False), ("cancel", "unavailable", True)]
    assert await movements(books, r.pending_id) == [MovementKind.RESERVE, MovementKind.CANCEL]
    assert funds_moved(before, await books.check_funds()) == (0, 0, 0)
    assert await balances(db, r) == ((0, 0), (0, 0))
    assert len(await resolutions(db, r)) == 1
    assert await outbox_event(db, r) is None
    await assert_sound(db)


async def test_no_call_starts_that_could_only_answer_after_the_timeout(
    db: Database, treasury: TreasuryProcess, books: RemoteSource
) -> None:
    funder = await remote_funder(db, treasury.target, deadline_ms=SHORT_TIMEOUT * 1000)
    r = await reserving_allocation(db, funder, 700, timeout_seconds=SHORT_TIMEOUT)
    assert await saga(db).drive_once() == 0
    assert await calls(db, r) == []
    assert await movements(books, r.pending_id) == []
    await expire(db, r)
    assert await saga(db).drive_once() == 1
    row = await allocation(db, r)
    assert (row.status, row.reason) == (AllocationStatus.FAILED, CommitmentReason.TIMED_OUT)
    # The cancel found nothing at the source: nothing to reconcile.
    assert summary(await calls(db, r)) == [("cancel", "ok", False)]
    await assert_sound(db)


async def test_a_worker_that_died_after_the_source_committed_posts_once_when_it_comes_back(
    db: Database, treasury: TreasuryProcess, books: RemoteSource
) -> None:
    funder = await remote_funder(db, treasury.target)
    r = await reserving_allocation(db, funder, 3_300)
    before = await books.check_funds()
    # What a worker did before it died: the source reserved and committed; the ledger knows nothing.
    row = await allocation(db, r)
    reference = f"consultation:{row.consultation_id} commune:MU0042 candidate:{row.candidate_id}"
    await books.reserve(r.pending_id, 3_300, CURRENCY, reference, commune_id=row.commune_id, project_id=r.allocation_id)
    await books.commit(r.pending_id, 3_300, CURRENCY)

    assert await saga(db).drive_once() == 1

    assert (await allocation(db, r)).status == AllocationStatus.COMMITTED
    assert [t.kind for t in await resolutions(db, r)] == [TransferKind.POST]
    # The retried Reserve and Commit got their first answers: no second movement.
    assert await movements(books, r.pending_id) == [MovementKind.RESERVE, MovementKind.COMMIT]
    assert funds_moved(before, await books.check_funds()) == (-3_300, 0, 3_300)
    await assert_sound(db)


async def test_a_source_that_committed_after_the_ledger_gave_up_is_flagged(
    db: Database, treasury: TreasuryProcess, books: RemoteSource
) -> None:
    funder = await remote_funder(db, treasury.target)
    r = await reserving_allocation(db, funder, 900, timeout_seconds=SHORT_TIMEOUT)
    before = await books.check_funds()
    row = await allocation(db, r)
    reference = f"consultation:{row.consultation_id} commune:MU0042 candidate:{row.candidate_id}"
    await books.reserve(r.pending_id, 900, CURRENCY, reference, commune_id=row.commune_id, project_id=r.allocation_id)
    await books.commit(r.pending_id, 900, CURRENCY)  # ... and the worker that did it came back too late
    expired = await expire(db, r)

    assert await saga(db).drive_once() == 1

    row = await allocation(db, r)
    assert (row.status, row.reason, row.resolution_transfer_id) == (
        AllocationStatus.FAILED,
        CommitmentReason.COMMITTED_LATE,
        expired.id,
    )
    [cancel] = await calls(db, r)
    assert (cancel.operation, cancel.outcome, cancel.needs_reconciliation) == ("cancel", "conflict", True)
    # The ledger holds nothing for it; the treasury committed the money: for reconciliation.
    assert await balances(db, r) == ((0, 0), (0, 0))
    assert funds_moved(before, await books.check_funds()) == (-900, 0, 900)
    assert await outbox_event(db, r) is None
    await assert_sound(db)


async def test_wrong_or_missing_credentials_keep_it_reserving_and_are_logged_as_errors(
    db: Database, treasury: TreasuryProcess, books: RemoteSource, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = await remote_funder(db, treasury.target, credentials_ref="stale")
    unknown = await remote_funder(db, treasury.target, credentials_ref="nobody")
    a = await reserving_allocation(db, wrong, 100)
    b = await reserving_allocation(db, unknown, 100)
    credentials = {**CREDENTIALS, "stale": SecretStr("not-the-treasury-token-0123456789")}
    with caplog.at_level(logging.ERROR, logger="comuna_funding.commitments"):
        assert await saga(db, credentials).drive_once() == 0
    assert (await allocation(db, a)).status == (await allocation(db, b)).status == AllocationStatus.RESERVING
    [refused] = await calls(db, a)
    assert (refused.operation, refused.outcome) == (SourceOperation.RESERVE, SourceCallOutcome.UNAVAILABLE)
    assert "unauthenticated" in refused.detail
    assert await calls(db, b) == []  # never called: there is no token to call it with
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert any("credentials" in rec.getMessage() and getattr(rec, "funder", "") == wrong for rec in errors)
    assert any("nobody" in rec.getMessage() for rec in errors)
    assert await movements(books, a.pending_id) == []
    # Fixed by an operator: the next round commits.
    fixed = {**CREDENTIALS, "stale": SecretStr(TOKEN), "nobody": SecretStr(TOKEN)}
    assert await saga(db, fixed).drive_once() == 2
    assert (await allocation(db, a)).status == (await allocation(db, b)).status == AllocationStatus.COMMITTED
    await assert_sound(db)


# --- the crash ----------------------------------------------------------------------------------


async def wait_for_reservation(treasury_url: str, reservation_id: uuid.UUID, within: float = 5.0) -> None:
    """Until the treasury has durably recorded the reservation (it then sleeps before answering)."""
    engine = create_async_engine(treasury_url)
    deadline = time.monotonic() + within
    try:
        while True:
            async with engine.connect() as conn:
                query = text("SELECT count(*) FROM treasury_reservations WHERE id = :id")
                if (await conn.execute(query, {"id": reservation_id})).scalar_one():
                    return
            assert time.monotonic() < deadline, "the treasury never recorded the reservation"
            await asyncio.sleep(0.01)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("back", ["before the timeout", "after the timeout"])
async def test_a_treasury_killed_mid_reservation_leaves_the_ledger_consistent_and_resolves_once(
    db: Database, treasury_url: str, tmp_path: Path, books: RemoteSource, back: str
) -> None:
    # It records the reservation, then would wait 30 s before answering: the kill lands in between.
    crashy = TreasuryProcess(treasury_url, tmp_path, extra=("--delay-seconds", "30"))
    crashy.start()
    try:
        funder = await remote_funder(db, crashy.target, deadline_ms=3000)
        r = await reserving_allocation(db, funder, 6_100, timeout_seconds=900 if back == "before the timeout" else 6)
        before = await books.check_funds()
        worker = saga(db)
        round_one = asyncio.create_task(worker.drive_once())
        await wait_for_reservation(treasury_url, r.pending_id)
        crashy.kill()
        assert await round_one == 0

        # Consistent meanwhile: the ledger holds the money pending, the treasury holds it reserved.
        assert (await allocation(db, r)).status == AllocationStatus.RESERVING
        assert await balances(db, r) == ((0, 6_100), (0, 6_100))
        [lost] = await calls(db, r)
        assert (lost.operation, lost.outcome) == ("reserve", "unavailable")
        assert "deadline_exceeded" not in lost.detail  # the connection broke: the kill landed mid-call
        assert funds_moved(before, await books.check_funds()) == (-6_100, 6_100, 0)
        await assert_sound(db)

        if back == "after the timeout":
            await expire(db, r)
        crashy.extra = ()
        crashy.start()  # same port, same books, answering at once now
        assert await worker.drive_once() == 1
        assert await worker.drive_once() == 0
    finally:
        crashy.kill()

    [resolution] = await resolutions(db, r)  # exactly once
    row = await allocation(db, r)
    assert row.resolution_transfer_id == resolution.id
    after = await books.check_funds()
    if back == "before the timeout":
        assert (row.status, resolution.kind) == (AllocationStatus.COMMITTED, TransferKind.POST)
        assert await balances(db, r) == ((6_100, 0), (6_100, 0))
        assert await movements(books, r.pending_id) == [MovementKind.RESERVE, MovementKind.COMMIT]
        assert funds_moved(before, after) == (-6_100, 0, 6_100)
        assert await outbox_event(db, r) is not None
        assert summary(await calls(db, r)) == [
            ("reserve", "unavailable", False),
            ("reserve", "ok", False),
            ("commit", "ok", False),
        ]
    else:
        assert (row.status, row.reason, resolution.kind) == (
            AllocationStatus.FAILED,
            CommitmentReason.TIMED_OUT,
            TransferKind.EXPIRE,
        )
        assert await balances(db, r) == ((0, 0), (0, 0))
        assert await movements(books, r.pending_id) == [MovementKind.RESERVE, MovementKind.CANCEL]
        assert funds_moved(before, after) == (0, 0, 0)
        assert await outbox_event(db, r) is None
        # The cancel answered: both sides hold nothing, nothing to reconcile.
        assert summary(await calls(db, r)) == [("reserve", "unavailable", False), ("cancel", "ok", False)]
    await assert_sound(db)
