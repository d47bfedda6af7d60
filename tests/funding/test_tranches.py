"""Tranches tied to milestones, through real NATS JetStream, PostgreSQL and the running service:
`projects.project.created` reserves each milestone's tranche on the allocation's commitment,
`projects.milestone.verified` posts it (partially, or not at all above the reservation),
`projects.project.cancelled` voids what is left and returns the unspent money to the funder.
Replays, duplicates and concurrent copies change nothing twice, and tranches above the
commitment are refused by the ledger with nothing written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update

from comuna.common.v1 import money_pb2
from comuna.funding.v1 import events_pb2 as funding_events
from comuna.projects.v1 import events_pb2 as project_events
from comuna.projects.v1 import projects_pb2
from comuna_devstack.nats import EmbeddedNats
from comuna_funding.domain import ids, ledger, tranches
from comuna_funding.domain.disbursements import Tranche as VerifiedTranche
from comuna_funding.domain.ledger import AccountSpec, NewTransfer
from comuna_funding.service import SPEC
from comuna_funding.settings import Settings
from comuna_funding.storage import ledger_store
from comuna_funding.storage.ledger_store import AccountRow, TransferRow
from comuna_funding.storage.models import Allocation, Disbursement, Tranche
from comuna_funding.vocabulary import AccountKind, AllocationStatus, TransferKind
from comuna_platform.db import Database
from comuna_platform.events.tables import inbox_table, parked_table
from comuna_platform.uow import UnitOfWork
from tests.funding.helpers import account, drained, eventually, open_accounts, post, publish, stream_messages
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, running_service

pytestmark = pytest.mark.asyncio

CREATED = "projects.project.created"
VERIFIED = "projects.milestone.verified"
CANCELLED = "projects.project.cancelled"
DURABLE = "funding-disbursements"


# --- an allocation, as the co-funding domain leaves it ------------------------------------------


@dataclass(frozen=True)
class Funded:
    allocation_id: uuid.UUID
    commune_id: uuid.UUID
    funder: str
    source: AccountRow
    commitment: AccountRow
    transfer_id: uuid.UUID
    amount: int


async def funded_allocation(db: Database, amount: int, *, reserving: bool = False) -> Funded:
    """A funder's commitment of `amount` to one project: `source -> commitment`, single (or
    pending while a remote source is asked, status `reserving`), and its allocation row."""
    allocation_id, commune_id = uuid.uuid4(), uuid.uuid4()
    funder = f"funder_{uuid.uuid4().hex[:10]}"
    source, commitment = await open_accounts(
        db,
        AccountSpec(key=f"source:{funder}:USD", currency="USD", kind=AccountKind.SOURCE),
        AccountSpec(
            key=f"commitment:{allocation_id}",
            currency="USD",
            kind=AccountKind.COMMITMENT,
            debits_must_not_exceed_credits=True,
        ),
    )
    funding = NewTransfer(
        id=uuid.uuid4(),
        debit_account_id=source.id,
        credit_account_id=commitment.id,
        amount=amount,
        currency="USD",
        code="grant_commitment",
        kind=TransferKind.PENDING if reserving else TransferKind.SINGLE,
    )
    await post(db, funding)
    async with db.transaction() as session:
        session.add(
            Allocation(
                id=allocation_id,
                consultation_id=uuid.uuid4(),
                commune_id=commune_id,
                commune_code="VE.01.01.C0001",
                candidate_id=uuid.uuid4(),
                title="Cancha techada",
                amount_minor=amount,
                currency="USD",
                funding_source=funder,
                account_id=commitment.id,
                transfer_id=funding.id,
                status=AllocationStatus.RESERVING if reserving else AllocationStatus.COMMITTED,
            )
        )
    return Funded(allocation_id, commune_id, funder, source, commitment, funding.id, amount)


async def commit_reserved(db: Database, funded: Funded) -> None:
    """The remote source confirmed: post the pending commitment, mark the allocation committed."""
    posted = NewTransfer(
        id=uuid.uuid4(),
        debit_account_id=None,
        credit_account_id=None,
        amount=None,
        currency=None,
        code="grant_commitment",
        kind=TransferKind.POST,
        pending_id=funded.transfer_id,
    )
    await post(db, posted)
    async with db.transaction() as session:
        await session.execute(
            update(Allocation)
            .where(Allocation.id == funded.allocation_id)
            .values(status=AllocationStatus.COMMITTED, resolution_transfer_id=posted.id)
        )


# --- projects' events --------------------------------------------------------------------------


def money(amount: int, currency: str = "USD") -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount, currency=currency)


def project_created(funded: Funded, amounts: Sequence[int], *, currency: str = "USD") -> project_events.ProjectCreated:
    return project_events.ProjectCreated(
        project=projects_pb2.Project(
            project_id=str(uuid.uuid4()),
            allocation_id=str(funded.allocation_id),
            consultation_id=str(uuid.uuid4()),
            commune_id=str(funded.commune_id),
            title="Cancha techada",
            budget=money(sum(amounts), currency),
            milestones=[
                projects_pb2.Milestone(
                    milestone_id=str(uuid.uuid4()),
                    sequence=sequence,
                    title=f"Etapa {sequence}",
                    tranche=money(amount, currency),
                )
                for sequence, amount in enumerate(amounts, start=1)
            ],
        )
    )


def milestone_verified(
    created: project_events.ProjectCreated, index: int, amount: int | None = None
) -> project_events.MilestoneVerified:
    project, milestone = created.project, created.project.milestones[index]
    return project_events.MilestoneVerified(
        project_id=project.project_id,
        milestone_id=milestone.milestone_id,
        allocation_id=project.allocation_id,
        commune_id=project.commune_id,
        tranche=money(milestone.tranche.amount_minor if amount is None else amount),
        verified_by="overseer",
    )


def project_cancelled(created: project_events.ProjectCreated, reason: str = "la obra no sigue") -> Any:
    at = Timestamp()
    at.FromDatetime(datetime.now(UTC))
    project = created.project
    return project_events.ProjectCancelled(
        project_id=project.project_id,
        allocation_id=project.allocation_id,
        commune_id=project.commune_id,
        reason=reason,
        cancelled_at=at,
    )


def milestone_ids(created: project_events.ProjectCreated) -> list[uuid.UUID]:
    return [uuid.UUID(m.milestone_id) for m in created.project.milestones]


# --- reads -------------------------------------------------------------------------------------


async def tranches_of(db: Database, project_id: str) -> list[Tranche]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(Tranche).where(Tranche.project_id == uuid.UUID(project_id)).order_by(Tranche.sequence)
        )
        return list(rows.scalars().all())


async def reserved(db: Database, created: project_events.ProjectCreated) -> list[Tranche] | None:
    rows = await tranches_of(db, created.project.project_id)
    return rows if len(rows) == len(created.project.milestones) else None


async def disbursement(db: Database, milestone_id: str) -> Disbursement | None:
    async with db.transaction() as session:
        return (
            await session.execute(select(Disbursement).where(Disbursement.milestone_id == uuid.UUID(milestone_id)))
        ).scalar_one_or_none()


async def transfer(db: Database, transfer_id: uuid.UUID) -> TransferRow | None:
    async with db.transaction() as session:
        return (await ledger_store.transfers_by_ids(session, [transfer_id])).get(transfer_id)


async def transfers_of(db: Database, account_id: uuid.UUID) -> list[TransferRow]:
    async with db.transaction() as session:
        return list(await ledger_store.transfers_page(session, account_id=account_id, after_seq=0, limit=1000))


async def commune_account(db: Database, funded: Funded) -> AccountRow | None:
    async with db.transaction() as session:
        found = await ledger_store.accounts_by_keys(session, [f"commune:{funded.commune_id}:USD"])
    return found.get(f"commune:{funded.commune_id}:USD")


def totals(row: AccountRow) -> tuple[int, int, int, int]:
    return (row.debits_posted, row.credits_posted, row.debits_pending, row.credits_pending)


async def parked_rows(db: Database, event_id: uuid.UUID) -> list[dict[str, Any]] | None:
    async with db.transaction() as session:
        rows = await session.execute(select(parked_table).where(parked_table.c.event_id == event_id))
        return [dict(row) for row in rows.mappings().all()] or None


async def released_events(js: JetStreamContext, allocation_id: uuid.UUID) -> list[funding_events.AllocationReleased]:
    found = await stream_messages(js, "FUNDING", "funding.allocation.released", funding_events.AllocationReleased)
    return [m for _, m in found if m.allocation_id == str(allocation_id)]


async def disbursed_events(js: JetStreamContext, milestone_id: str) -> list[funding_events.TrancheDisbursed]:
    found = await stream_messages(js, "FUNDING", "funding.tranche.disbursed", funding_events.TrancheDisbursed)
    return [m for _, m in found if m.milestone_id == milestone_id]


async def rejected_events(js: JetStreamContext, milestone_id: str) -> list[funding_events.TrancheRejected]:
    found = await stream_messages(js, "FUNDING", "funding.tranche.rejected", funding_events.TrancheRejected)
    return [m for _, m in found if m.milestone_id == milestone_id]


async def at_least(rows: Any, n: int) -> Any:
    found = await rows
    return found if len(found) >= n else None


async def assert_sound(db: Database) -> None:
    async with db.transaction() as session:
        assert await ledger.audit(session) == []
        sums = await ledger.ledger_totals(session)
    assert sums and all(t.balanced for t in sums), sums


async def settle(js: JetStreamContext, db: Database, message: project_events.MilestoneVerified) -> Disbursement:
    await publish(js, VERIFIED, message)
    return await eventually(lambda: disbursement(db, message.milestone_id), "the disbursement")


# --- the whole life of a project's tranches ---------------------------------------------------


async def test_tranches_are_reserved_posted_partially_refused_and_released_on_cancel(
    funding: RunningService, db: Database, js: JetStreamContext
) -> None:
    funded = await funded_allocation(db, 1_000_000)
    created = project_created(funded, [300_000, 300_000, 400_000])
    first, second, third = created.project.milestones
    event_id = await publish(js, CREATED, created)
    rows = await eventually(lambda: reserved(db, created), "the tranches to be reserved")

    # One pending transfer per milestone, commitment -> commune, no timeout, ids from the milestone.
    assert [(r.sequence, r.amount_minor, r.status, r.resolution_transfer_id) for r in rows] == [
        (1, 300_000, "reserved", None),
        (2, 300_000, "reserved", None),
        (3, 400_000, "reserved", None),
    ]
    commune = await commune_account(db, funded)
    assert commune is not None and commune.kind == "commune"
    for row, milestone_id in zip(rows, milestone_ids(created), strict=True):
        assert row.pending_transfer_id == ids.tranche_reservation_id_for(milestone_id)
        assert row.allocation_id == funded.allocation_id
        pending = await transfer(db, row.pending_transfer_id)
        assert pending is not None
        assert (pending.kind, pending.code, pending.timeout_seconds) == ("pending", "tranche_reservation", None)
        assert (pending.debit_account_id, pending.credit_account_id) == (funded.commitment.id, commune.id)
    assert totals(await account(db, funded.commitment.id)) == (0, 1_000_000, 1_000_000, 0)
    assert totals(await account(db, commune.id)) == (0, 0, 0, 1_000_000)

    # The same event redelivered (inbox) and a copy under a new event id (derived ids): no-ops.
    await publish(js, CREATED, created, event_id=event_id, msg_id=f"again-{event_id}")
    await publish(js, CREATED, created)
    await drained(js, "PROJECTS", DURABLE)
    assert len(await tranches_of(db, created.project.project_id)) == 3
    assert totals(await account(db, funded.commitment.id)) == (0, 1_000_000, 1_000_000, 0)
    assert len(await transfers_of(db, funded.commitment.id)) == 1 + 3

    # Verified: the reservation is posted to the commune, exactly as reported.
    paid = await settle(js, db, milestone_verified(created, 0))
    assert (paid.status, paid.reason, paid.amount_minor) == ("completed", None, 300_000)
    assert paid.transfer_id == ids.tranche_post_id_for(uuid.UUID(first.milestone_id))
    posted = await transfer(db, paid.transfer_id)
    assert posted is not None and (posted.kind, posted.code, posted.amount) == ("post", "tranche_disbursement", 300_000)
    assert posted.pending_id == rows[0].pending_transfer_id
    [event] = await eventually(lambda: at_least(disbursed_events(js, first.milestone_id), 1), "TrancheDisbursed")
    assert (event.transfer_id, event.disbursement_id, event.amount.amount_minor) == (
        str(paid.transfer_id),
        str(paid.id),
        300_000,
    )
    assert totals(await account(db, funded.commitment.id)) == (300_000, 1_000_000, 700_000, 0)
    assert totals(await account(db, commune.id)) == (0, 300_000, 0, 700_000)

    # Less than reserved: that much is posted, the remainder goes back to the commitment.
    partial = await settle(js, db, milestone_verified(created, 1, 250_000))
    assert (partial.status, partial.amount_minor) == ("completed", 250_000)
    assert totals(await account(db, funded.commitment.id)) == (550_000, 1_000_000, 400_000, 0)
    assert totals(await account(db, commune.id)) == (0, 550_000, 0, 400_000)

    # More than reserved: refused, announced, nothing moves, the reservation stands.
    greedy = await settle(js, db, milestone_verified(created, 2, 400_001))
    assert (greedy.status, greedy.reason, greedy.transfer_id) == ("rejected", "exceeds_tranche", None)
    [rejection] = await eventually(lambda: at_least(rejected_events(js, third.milestone_id), 1), "TrancheRejected")
    assert (rejection.reason, rejection.disbursement_id) == ("exceeds_tranche", str(greedy.id))
    assert totals(await account(db, funded.commitment.id)) == (550_000, 1_000_000, 400_000, 0)
    by_milestone = {str(r.milestone_id): r for r in await tranches_of(db, created.project.project_id)}
    assert [by_milestone[m.milestone_id].status for m in (first, second, third)] == ["posted", "posted", "reserved"]

    # Verified again (new event ids): one disbursement each, money moved once.
    for index in range(3):
        await publish(js, VERIFIED, milestone_verified(created, index))
    await drained(js, "PROJECTS", DURABLE)
    assert totals(await account(db, funded.commitment.id)) == (550_000, 1_000_000, 400_000, 0)
    assert len(await disbursed_events(js, first.milestone_id)) == 1
    assert len(await rejected_events(js, third.milestone_id)) == 1

    # Cancelled: the third tranche is voided and the 450,000 unspent go back to the funder's source.
    await publish(js, CANCELLED, project_cancelled(created))
    [released] = await eventually(
        lambda: at_least(released_events(js, funded.allocation_id), 1), "AllocationReleased on FUNDING"
    )
    release_id = ids.commitment_release_id_for(funded.allocation_id)
    assert (released.transfer_id, released.amount.amount_minor, released.amount.currency) == (
        str(release_id),
        450_000,
        "USD",
    )
    assert (released.project_id, released.commune_id, released.funding_source, released.reason) == (
        created.project.project_id,
        str(funded.commune_id),
        funded.funder,
        "la obra no sigue",
    )
    assert list(released.voided_milestone_ids) == [third.milestone_id]
    back = await transfer(db, release_id)
    assert back is not None and (back.kind, back.code, back.amount) == ("single", "commitment_released", 450_000)
    assert (back.debit_account_id, back.credit_account_id) == (funded.commitment.id, funded.source.id)
    voided = by_milestone[third.milestone_id]
    after = {str(r.milestone_id): r for r in await tranches_of(db, created.project.project_id)}
    assert after[third.milestone_id].status == "voided"
    void = await transfer(db, ids.tranche_void_id_for(voided.milestone_id))
    assert void is not None
    assert (void.kind, void.pending_id, void.amount) == ("void", voided.pending_transfer_id, 400_000)
    commitment = await account(db, funded.commitment.id)
    assert commitment.credits_posted - commitment.debits_posted == 0 and commitment.debits_pending == 0
    assert totals(await account(db, commune.id)) == (0, 550_000, 0, 0)
    # The source paid 1,000,000 out and got the 450,000 unspent back: 550,000 spent, all at the commune.
    assert totals(await account(db, funded.source.id)) == (1_000_000, 450_000, 0, 0)

    # Cancelled again, under new event ids: nothing more moves, it is announced once.
    for _ in range(2):
        await publish(js, CANCELLED, project_cancelled(created))
    await publish(js, CREATED, created)
    await drained(js, "PROJECTS", DURABLE)
    assert len(await released_events(js, funded.allocation_id)) == 1
    # The funding, 3 reservations, 2 posts, 1 void, 1 release.
    assert len(await transfers_of(db, funded.commitment.id)) == 1 + 3 + 2 + 1 + 1
    assert commitment == await account(db, funded.commitment.id)
    await assert_sound(db)


async def test_a_cancelled_projects_milestones_are_no_longer_paid(
    funding: RunningService, db: Database, js: JetStreamContext
) -> None:
    funded = await funded_allocation(db, 600_000)
    created = project_created(funded, [200_000, 200_000])
    await publish(js, CREATED, created)
    await eventually(lambda: reserved(db, created), "the tranches to be reserved")
    await publish(js, CANCELLED, project_cancelled(created, "desistimiento de la comuna"))
    [released] = await eventually(lambda: at_least(released_events(js, funded.allocation_id), 1), "the release")
    # Nothing was spent: the whole commitment goes back.
    assert released.amount.amount_minor == 600_000
    assert sorted(released.voided_milestone_ids) == sorted(m.milestone_id for m in created.project.milestones)

    late = await settle(js, db, milestone_verified(created, 0))
    assert (late.status, late.reason, late.transfer_id) == ("rejected", "project_cancelled", None)
    assert totals(await account(db, funded.commitment.id)) == (600_000, 600_000, 0, 0)
    commune = await commune_account(db, funded)
    assert commune is not None and totals(commune) == (0, 0, 0, 0)
    await assert_sound(db)


# --- what the ledger refuses ------------------------------------------------------------------


async def test_tranches_above_the_commitment_are_refused_and_nothing_is_written(
    funding: RunningService, db: Database, js: JetStreamContext
) -> None:
    funded = await funded_allocation(db, 500_000)
    created = project_created(funded, [300_000, 200_001])
    event_id = await publish(js, CREATED, created)
    [parked] = await eventually(lambda: parked_rows(db, event_id), "the refused project to be parked")
    assert (parked["consumer"], parked["reason"], parked["deliveries"]) == (DURABLE, "unprocessable", 1)
    assert "exceeds_allocation" in parked["error"]

    # Nothing: no tranche, no reservation, no commune account, the commitment untouched, and the
    # event not marked consumed (an operator's replay will apply it once the commitment allows).
    assert await tranches_of(db, created.project.project_id) == []
    for milestone_id in milestone_ids(created):
        assert await transfer(db, ids.tranche_reservation_id_for(milestone_id)) is None
    assert await commune_account(db, funded) is None
    assert totals(await account(db, funded.commitment.id)) == (0, 500_000, 0, 0)
    async with db.transaction() as session:
        consumed = await session.execute(select(inbox_table).where(inbox_table.c.event_id == event_id))
        assert consumed.first() is None

    # The consumer goes on: exactly the commitment fits.
    fits = project_created(funded, [300_000, 200_000])
    await publish(js, CREATED, fits)
    await eventually(lambda: reserved(db, fits), "the tranches that fit")
    assert totals(await account(db, funded.commitment.id)) == (0, 500_000, 500_000, 0)
    await assert_sound(db)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"currency": "EUR"}, "currency_mismatch"),
        ({"commune_id": str(uuid.uuid4())}, "commune_mismatch"),
        ({"allocation_id": str(uuid.uuid4())}, "allocation_unknown"),
        ({"milestone_id": "not-a-uuid"}, "valid project, allocation and milestone ids"),
    ],
)
async def test_a_project_that_cannot_be_reserved_is_parked(
    funding: RunningService, db: Database, js: JetStreamContext, change: dict[str, str], code: str
) -> None:
    funded = await funded_allocation(db, 100_000)
    created = project_created(funded, [50_000, 50_000], currency=change.get("currency", "USD"))
    if "commune_id" in change:
        created.project.commune_id = change["commune_id"]
    if "allocation_id" in change:
        created.project.allocation_id = change["allocation_id"]
    if "milestone_id" in change:
        created.project.milestones[1].milestone_id = change["milestone_id"]
    event_id = await publish(js, CREATED, created)
    [parked] = await eventually(lambda: parked_rows(db, event_id), "the project event to be parked")
    assert parked["reason"] == "unprocessable" and code in parked["error"]
    assert await tranches_of(db, created.project.project_id) == []
    assert totals(await account(db, funded.commitment.id)) == (0, 100_000, 0, 0)


# --- money not committed yet ------------------------------------------------------------------


def failures(event_type: str) -> float:
    value = REGISTRY.get_sample_value(
        "comuna_events_handled_total", {"consumer": DURABLE, "event_type": event_type, "outcome": "failed"}
    )
    return value or 0.0


async def test_a_project_of_an_allocation_still_reserving_waits_for_the_commitment(
    funding: RunningService, db: Database, js: JetStreamContext
) -> None:
    """Nothing is reserved against money a remote source has not confirmed; the event is
    redelivered (not parked) and applies once the allocation is committed."""
    funded = await funded_allocation(db, 800_000, reserving=True)
    created = project_created(funded, [500_000, 300_000])
    before = failures("comuna.projects.v1.ProjectCreated")
    event_id = await publish(js, CREATED, created)

    async def refused_once() -> bool:
        return failures("comuna.projects.v1.ProjectCreated") > before

    await eventually(refused_once, "a first, refused delivery")
    assert await tranches_of(db, created.project.project_id) == []
    assert totals(await account(db, funded.commitment.id)) == (0, 0, 0, 800_000)
    assert await parked_rows(db, event_id) is None

    await commit_reserved(db, funded)
    rows = await eventually(lambda: reserved(db, created), "the tranches, once committed")
    assert [r.amount_minor for r in rows] == [500_000, 300_000]
    assert totals(await account(db, funded.commitment.id)) == (0, 800_000, 800_000, 0)
    assert await parked_rows(db, event_id) is None
    await assert_sound(db)


# --- older projects and concurrent copies -----------------------------------------------------


async def test_a_milestone_paid_before_tranches_existed_is_not_reserved_again(
    funding: RunningService, db: Database, js: JetStreamContext
) -> None:
    """A project older than tranches: its verified milestone is paid in one transfer, as before;
    its creation arriving later (a replay) reserves only the milestones not settled yet."""
    funded = await funded_allocation(db, 900_000)
    created = project_created(funded, [400_000, 500_000])
    paid = await settle(js, db, milestone_verified(created, 0))
    assert paid.status == "completed"
    assert paid.transfer_id == ids.disbursement_transfer_id_for(uuid.UUID(created.project.milestones[0].milestone_id))
    single = await transfer(db, paid.transfer_id)
    assert single is not None and (single.kind, single.code) == ("single", "tranche_disbursement")

    await publish(js, CREATED, created)
    [row] = await eventually(lambda: at_least(tranches_of(db, created.project.project_id), 1), "the second tranche")
    assert (str(row.milestone_id), row.amount_minor) == (created.project.milestones[1].milestone_id, 500_000)
    assert totals(await account(db, funded.commitment.id)) == (400_000, 900_000, 500_000, 0)
    await settle(js, db, milestone_verified(created, 1))
    assert totals(await account(db, funded.commitment.id)) == (900_000, 900_000, 0, 0)
    await assert_sound(db)


@pytest_asyncio.fixture
async def replica(
    funding_db_url: str, funding: RunningService, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[RunningService]:
    """A second instance on the same database and durable consumer, as in a scaled deployment."""
    async with running_service(
        SPEC, Settings, database_url=funding_db_url, nats_url=embedded_nats.url, issuer=issuer
    ) as second:
        yield second


async def test_copies_of_each_event_on_two_replicas_move_money_once(
    funding: RunningService, replica: RunningService, db: Database, js: JetStreamContext
) -> None:
    funded = await funded_allocation(db, 1_000_000)
    created = project_created(funded, [250_000, 250_000, 500_000])
    for _ in range(6):
        await publish(js, CREATED, created)
    await eventually(lambda: reserved(db, created), "the tranches")
    for _ in range(6):
        await publish(js, VERIFIED, milestone_verified(created, 0))
        await publish(js, VERIFIED, milestone_verified(created, 1, 200_000))
    for index in range(2):
        await eventually(lambda i=index: disbursement(db, created.project.milestones[i].milestone_id), "payment")
    for _ in range(6):
        await publish(js, CANCELLED, project_cancelled(created))
    await eventually(lambda: at_least(released_events(js, funded.allocation_id), 1), "the release")
    await drained(js, "PROJECTS", DURABLE)

    # 3 reservations, 2 posts, 1 void, 1 release; 550,000 back to the funder.
    assert len(await transfers_of(db, funded.commitment.id)) == 1 + 3 + 2 + 1 + 1
    assert totals(await account(db, funded.commitment.id)) == (1_000_000, 1_000_000, 0, 0)
    assert totals(await account(db, funded.source.id)) == (1_000_000, 550_000, 0, 0)
    assert len(await released_events(js, funded.allocation_id)) == 1
    for milestone in created.project.milestones[:2]:
        assert len(await disbursed_events(js, milestone.milestone_id)) == 1
    await assert_sound(db)


async def test_concurrent_units_of_work_on_one_project_apply_each_step_once(db: Database) -> None:
    """The domain itself, six concurrent transactions per step (the allocation's row lock
    serialises them; the derived ids and the rows found make the later ones no-ops)."""
    funded = await funded_allocation(db, 700_000)
    created = project_created(funded, [300_000, 400_000])
    project_id, milestones = uuid.UUID(created.project.project_id), milestone_ids(created)
    plan = tranches.ProjectPlan(
        project_id=project_id,
        allocation_id=funded.allocation_id,
        commune_id=funded.commune_id,
        milestones=tuple(
            tranches.MilestonePlan(m, i, a, "USD")
            for i, (m, a) in enumerate(zip(milestones, [300_000, 400_000], strict=True), start=1)
        ),
    )

    async def reserve() -> int:
        async with db.transaction() as session:
            return len(await tranches.reserve_tranches(UnitOfWork.of(session), plan))

    assert sorted(await asyncio.gather(*(reserve() for _ in range(6)))) == [0, 0, 0, 0, 0, 2]

    verified = VerifiedTranche(project_id, milestones[0], funded.allocation_id, funded.commune_id, 300_000, "USD")

    async def pay() -> uuid.UUID | None:
        async with db.transaction() as session:
            found = await tranches.disburse_reserved(UnitOfWork.of(session), verified)
            assert found is not None and found.status == "completed"
            return found.transfer_id

    assert set(await asyncio.gather(*(pay() for _ in range(6)))) == {ids.tranche_post_id_for(milestones[0])}

    cancellation = tranches.Cancellation(project_id, funded.allocation_id, funded.commune_id, "sin obra")

    async def cancel() -> int:
        async with db.transaction() as session:
            return (await tranches.cancel_project(UnitOfWork.of(session), cancellation)).released_minor

    assert sorted(await asyncio.gather(*(cancel() for _ in range(6)))) == [0, 0, 0, 0, 0, 400_000]
    assert totals(await account(db, funded.commitment.id)) == (700_000, 700_000, 0, 0)
    async with db.transaction() as session:
        count = (
            await session.execute(select(func.count()).select_from(Tranche).where(Tranche.project_id == project_id))
        ).scalar_one()
    assert count == 2
    await assert_sound(db)


async def test_a_planned_projects_milestone_waits_for_its_reservation(
    funding: RunningService, db: Database, js: JetStreamContext
) -> None:
    """A milestone verified before its project's creation was applied (e.g. the creation is
    being redelivered after a failure) is not paid outside the plan: it is retried, not parked,
    and paid from its reservation once the creation arrives."""
    funded = await funded_allocation(db, 700_000)
    created = project_created(funded, [300_000, 400_000])
    verified = milestone_verified(created, 0)
    verified.plan_revision = 1
    before = failures("comuna.projects.v1.MilestoneVerified")
    event_id = await publish(js, VERIFIED, verified)

    async def waited_once() -> bool:
        return failures("comuna.projects.v1.MilestoneVerified") > before

    await eventually(waited_once, "a first delivery that waits for the reservation")
    assert await disbursement(db, created.project.milestones[0].milestone_id) is None
    assert await parked_rows(db, event_id) is None

    await publish(js, CREATED, created)
    paid = await eventually(
        lambda: disbursement(db, created.project.milestones[0].milestone_id), "the tranche, once reserved"
    )
    assert paid.status == "completed"
    posted = await transfer(db, paid.transfer_id)
    assert posted is not None and posted.kind == "post"
    assert totals(await account(db, funded.commitment.id)) == (300_000, 700_000, 400_000, 0)
    await assert_sound(db)
