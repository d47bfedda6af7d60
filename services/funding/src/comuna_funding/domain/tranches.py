"""A project's funding released in tranches tied to its milestones (docs/ledger.md, "Tranches").

    projects.project.created    commitment:<allocation>  --tranche_reservation (pending)-->  commune:<id>:<CUR>
                                one pending transfer per milestone, all of the project in one atomic batch
    projects.milestone.verified post of that milestone's reservation (at most the reserved amount;
                                a partial post releases the remainder back to the commitment)
    projects.project.cancelled  void of every tranche still reserved, then
                                commitment:<allocation>  --commitment_released-->  the funder's source account

The commitment account carries `debits_must_not_exceed_credits`, pending debits included, so
the database itself refuses tranches that add up to more than was committed: spending can
never exceed the commitment, whatever the events say.

Every id is derived (the milestone, the allocation), and each use case runs under the
allocation's row lock, so replays, duplicates under new event ids and concurrent copies of an
event change nothing twice.

Failures, as the consumer turns them into the platform's outcomes:
- `ReservationRefused`: the event can never be applied as it is (tranches above the
  commitment, an unknown allocation, another commune or currency, ...). Nothing is written;
  the consumer parks the event for an operator (`UnprocessableEvent`), who can replay it once
  the cause is fixed.
- `AllocationNotCommitted`: the allocation is still `reserving` (a remote source is being
  asked). Retryable: the event is redelivered with the consumer's back-off, and parked
  (`handler_failed`) if the source still has not answered after `CONSUMER_MAX_DELIVERIES`;
  a replay then applies it. Nothing is ever reserved against money not yet committed.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from comuna_funding.domain import disbursements, ids, ledger
from comuna_funding.domain.disbursements import Tranche, commune_account_spec, refusal
from comuna_funding.domain.events import AllocationReleased
from comuna_funding.domain.ledger import NewTransfer
from comuna_funding.storage import ledger_store, repository, tranche_store
from comuna_funding.storage.models import Allocation, Disbursement
from comuna_funding.storage.models import Tranche as TrancheRow
from comuna_funding.vocabulary import (
    AllocationStatus,
    RefusalReason,
    TrancheStatus,
    TransferCode,
    TransferKind,
)
from comuna_platform.errors import FailedPrecondition, ProblemError
from comuna_platform.events.failures import EventNotYetApplicable
from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)


class ReservationRefused(Exception):
    """The event can never be applied as it is; nothing was written."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class AllocationNotCommitted(Exception):
    """The allocation's money is not committed yet (a remote source is being asked): retry later."""


class ReservationPending(EventNotYetApplicable):
    """A verified milestone of a planned project has no tranche reserved yet: the reservation
    (its project's creation or plan change) has not been applied, e.g. it is being redelivered
    after a failure). Redelivered until it is, never parked for it: paying it outside the
    reservation would bypass the plan."""


@dataclass(frozen=True)
class MilestonePlan:
    milestone_id: uuid.UUID
    sequence: int
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class ProjectPlan:
    """What `projects.project.created` says funding must hold for the project."""

    project_id: uuid.UUID
    allocation_id: uuid.UUID
    commune_id: uuid.UUID | None
    milestones: tuple[MilestonePlan, ...]


@dataclass(frozen=True)
class Cancellation:
    project_id: uuid.UUID
    allocation_id: uuid.UUID
    commune_id: uuid.UUID | None
    reason: str


@dataclass(frozen=True)
class Release:
    """What a cancellation did: the milestones voided now, and what went back to the funder."""

    voided: tuple[uuid.UUID, ...]
    released_minor: int
    transfer_id: uuid.UUID | None


def _reference(project_id: uuid.UUID, milestone_id: uuid.UUID) -> str:
    return f"project:{project_id} milestone:{milestone_id}"


async def _live_allocation(uow: UnitOfWork, allocation_id: uuid.UUID, commune_id: uuid.UUID | None) -> Allocation:
    """The allocation, locked (it serialises every use case on its money), or why not."""
    allocation = await repository.allocation_by_id(uow.session, allocation_id, lock=True)
    if allocation is None:
        raise ReservationRefused(RefusalReason.ALLOCATION_UNKNOWN, f"allocation {allocation_id} does not exist")
    if commune_id is not None and commune_id != allocation.commune_id:
        raise ReservationRefused(
            RefusalReason.COMMUNE_MISMATCH, f"allocation {allocation_id} belongs to commune {allocation.commune_id}"
        )
    if allocation.status == AllocationStatus.RESERVING:
        raise AllocationNotCommitted(f"allocation {allocation_id} is still reserving its funder's money")
    return allocation


async def _released(uow: UnitOfWork, allocation_id: uuid.UUID) -> bool:
    release_id = ids.commitment_release_id_for(allocation_id)
    return bool(await ledger_store.transfers_by_ids(uow.session, [release_id]))


# --- projects.project.created -----------------------------------------------------------------


def _check_plan(plan: ProjectPlan, allocation: Allocation) -> None:
    seen: set[uuid.UUID] = set()
    for m in plan.milestones:
        if m.milestone_id in seen:
            raise ReservationRefused("milestone_repeated", f"milestone {m.milestone_id} appears twice")
        seen.add(m.milestone_id)
        if not 0 <= m.amount_minor <= ledger.MAX_AMOUNT:
            raise ReservationRefused(RefusalReason.INVALID_AMOUNT, f"milestone {m.milestone_id}: {m.amount_minor}")
        if m.amount_minor and m.currency != allocation.currency:
            raise ReservationRefused(
                RefusalReason.CURRENCY_MISMATCH,
                f"milestone {m.milestone_id} is in {m.currency!r}, the allocation in {allocation.currency}",
            )


async def reserve_tranches(uow: UnitOfWork, plan: ProjectPlan) -> list[TrancheRow]:
    """Reserve each milestone's tranche on the allocation's commitment; returns the rows made now.

    All of the project's new reservations go in one atomic batch: if together they exceed what
    the commitment holds, the ledger refuses them all and `ReservationRefused` is raised with
    nothing written. A milestone already reserved (a replay) is left as it is; one already
    settled by the single-transfer path (a project older than tranches) is not reserved; a
    milestone of zero gets no reservation (a transfer moves a positive amount).
    """
    session = uow.session
    allocation = await _live_allocation(uow, plan.allocation_id, plan.commune_id)
    if allocation.status != AllocationStatus.COMMITTED:
        raise ReservationRefused(
            "allocation_not_committed", f"allocation {allocation.id} is {allocation.status}: it holds no money"
        )
    _check_plan(plan, allocation)
    if await _released(uow, allocation.id):
        # Cancelled before its creation was handled (e.g. the creation was parked meanwhile).
        log.warning("project already cancelled: no tranche reserved", extra={"project_id": str(plan.project_id)})
        return []
    milestone_ids = [m.milestone_id for m in plan.milestones]
    reserved = await tranche_store.tranches_by_milestones(session, milestone_ids)
    settled = await tranche_store.disbursed_milestones(session, milestone_ids)
    new: list[MilestonePlan] = []
    for m in plan.milestones:
        row = reserved.get(m.milestone_id)
        if row is not None:
            expected = (allocation.id, plan.project_id, m.amount_minor)
            if (row.allocation_id, row.project_id, row.amount_minor) != expected:
                raise ReservationRefused(
                    "milestone_reserved_otherwise",
                    f"milestone {m.milestone_id} already holds {row.amount_minor} for project {row.project_id}",
                )
            continue
        if m.milestone_id in settled or m.amount_minor == 0:
            continue
        new.append(m)
    if not new:
        return []
    commune = await ledger.ensure_account(session, commune_account_spec(allocation.commune_id, allocation.currency))
    transfers = [
        NewTransfer(
            id=ids.tranche_reservation_id_for(m.milestone_id),
            debit_account_id=allocation.account_id,
            credit_account_id=commune.id,
            amount=m.amount_minor,
            currency=allocation.currency,
            code=TransferCode.TRANCHE_RESERVATION,
            reference=_reference(plan.project_id, m.milestone_id),
            kind=TransferKind.PENDING,
        )
        for m in new
    ]
    try:
        await ledger.create_transfers(session, transfers)
    except ProblemError as exc:
        # Raised before anything was written (the ledger decides in memory, then writes).
        code = RefusalReason.EXCEEDS_ALLOCATION if exc.code == "exceeds_credits" else exc.code
        log.error(
            "tranches refused: nothing reserved",
            extra={
                "project_id": str(plan.project_id),
                "allocation_id": str(allocation.id),
                "tranches_minor": sum(m.amount_minor for m in new),
                "code": code,
            },
        )
        raise ReservationRefused(code, exc.detail) from exc
    rows = [
        TrancheRow(
            milestone_id=m.milestone_id,
            allocation_id=allocation.id,
            project_id=plan.project_id,
            sequence=m.sequence,
            amount_minor=m.amount_minor,
            currency=allocation.currency,
            pending_transfer_id=t.id,
            status=TrancheStatus.RESERVED,
        )
        for m, t in zip(new, transfers, strict=True)
    ]
    await tranche_store.add_tranches(session, rows)
    return rows


async def _void(uow: UnitOfWork, project_id: uuid.UUID, reserved: list[TrancheRow]) -> None:
    """Void these reserved tranches (their money is free on the commitment again), in one batch."""
    voids = [
        NewTransfer(
            id=ids.tranche_void_id_for(r.milestone_id),
            debit_account_id=None,
            credit_account_id=None,
            amount=None,
            currency=None,
            code=TransferCode.TRANCHE_VOIDED,
            reference=_reference(project_id, r.milestone_id),
            kind=TransferKind.VOID,
            pending_id=r.pending_transfer_id,
        )
        for r in reserved
    ]
    if voids:
        await ledger.create_transfers(uow.session, voids)
        for row, void in zip(reserved, voids, strict=True):
            row.status = TrancheStatus.VOIDED
            row.resolution_transfer_id = void.id


# --- projects.plan.changed --------------------------------------------------------------------


@dataclass(frozen=True)
class Replan:
    voided: tuple[uuid.UUID, ...]
    reserved: tuple[uuid.UUID, ...]


async def replan_project(uow: UnitOfWork, plan: ProjectPlan) -> Replan:
    """The project's plan changed: void the tranches still reserved for milestones no longer in
    it, then reserve the new milestones' tranches, in one transaction (the commitment never
    holds both). Milestones kept by the new plan keep their reservation. A replay finds nothing
    to void and every tranche reserved, and changes nothing.
    """
    allocation = await _live_allocation(uow, plan.allocation_id, plan.commune_id)
    if await _released(uow, allocation.id):
        log.warning("project already cancelled: its plan change is ignored", extra={"project_id": str(plan.project_id)})
        return Replan((), ())
    rows = await tranche_store.tranches_of_project(uow.session, plan.project_id, lock=True)
    if any(r.allocation_id != allocation.id for r in rows):
        raise ReservationRefused(
            RefusalReason.ALLOCATION_MISMATCH,
            f"project {plan.project_id} holds tranches on another allocation than {allocation.id}",
        )
    kept = {m.milestone_id for m in plan.milestones}
    stale = [r for r in rows if r.status == TrancheStatus.RESERVED and r.milestone_id not in kept]
    await _void(uow, plan.project_id, stale)
    await uow.session.flush()
    reserved = await reserve_tranches(uow, plan)
    return Replan(tuple(r.milestone_id for r in stale), tuple(r.milestone_id for r in reserved))


# --- projects.milestone.verified --------------------------------------------------------------


async def disburse_reserved(uow: UnitOfWork, tranche: Tranche) -> Disbursement | None:
    """Pay a verified milestone from its reservation: the disbursement (completed or rejected),
    or None when the milestone has no reservation (the caller pays it as before, in one transfer).

    Posts at most the reserved amount; less posts that much and releases the rest back to the
    commitment. More is refused (`exceeds_tranche`) and moves nothing; so is a milestone whose
    project was cancelled (`project_cancelled`).
    """
    session = uow.session
    allocation = None
    if tranche.allocation_id is not None:
        # The lock every use case on this allocation takes first: same order, no deadlock.
        allocation = await repository.allocation_by_id(session, tranche.allocation_id, lock=True)
    existing = await repository.disbursement_by_milestone(session, tranche.milestone_id)
    if existing is not None:
        return existing
    row = await tranche_store.tranche_by_milestone(session, tranche.milestone_id, lock=True)
    if row is None:
        return None
    reason = refusal(tranche, allocation)
    if reason is None and allocation is not None and allocation.id != row.allocation_id:
        reason = RefusalReason.ALLOCATION_MISMATCH
    if reason is None and row.status == TrancheStatus.VOIDED:
        reason = RefusalReason.PROJECT_CANCELLED
    if reason is None and row.status != TrancheStatus.RESERVED:
        # Posted without a disbursement: only a bug could leave this; an operator must look.
        raise RuntimeError(f"tranche of milestone {row.milestone_id} is {row.status} but has no disbursement")
    if reason is None and tranche.amount_minor > row.amount_minor:
        reason = RefusalReason.EXCEEDS_TRANCHE
    transfer_id = None
    if reason is None:
        try:
            outcome = await ledger.create_transfer(
                session,
                NewTransfer(
                    id=ids.tranche_post_id_for(row.milestone_id),
                    debit_account_id=None,
                    credit_account_id=None,
                    amount=tranche.amount_minor,
                    currency=None,
                    code=TransferCode.TRANCHE_DISBURSEMENT,
                    reference=_reference(tranche.project_id, tranche.milestone_id),
                    kind=TransferKind.POST,
                    pending_id=row.pending_transfer_id,
                ),
            )
        except FailedPrecondition as exc:
            reason = exc.code
        else:
            transfer_id = outcome.transfer.id
            row.status = TrancheStatus.POSTED
            row.resolution_transfer_id = transfer_id
    return await disbursements.record_outcome(uow, tranche, transfer_id, reason)


# --- projects.project.cancelled ---------------------------------------------------------------


async def cancel_project(uow: UnitOfWork, cancellation: Cancellation) -> Release:
    """Void the project's reserved tranches and return the commitment's unspent money to the
    funder's source account (the debit account of the transfer that funded the allocation),
    once: the release's id is derived from the allocation, and a replay finds it and does nothing.

    Announced as `funding.allocation.released` when money moved. Tranches already paid stay
    paid. The allocation's status is left as it is: the ledger (an empty commitment) and the
    event say it was released.
    """
    session = uow.session
    allocation = await _live_allocation(uow, cancellation.allocation_id, cancellation.commune_id)
    nothing = Release(voided=(), released_minor=0, transfer_id=None)
    if await _released(uow, allocation.id):
        return nothing
    rows = await tranche_store.tranches_of_project(session, cancellation.project_id, lock=True)
    foreign = [r.milestone_id for r in rows if r.allocation_id != allocation.id]
    if foreign:
        raise ReservationRefused(
            RefusalReason.ALLOCATION_MISMATCH,
            f"project {cancellation.project_id} holds tranches on another allocation than {allocation.id}",
        )
    reserved = [r for r in rows if r.status == TrancheStatus.RESERVED]
    await _void(uow, cancellation.project_id, reserved)
    commitment = (await ledger_store.lock_accounts(session, [allocation.account_id]))[allocation.account_id]
    # What nothing else holds: reservations of this project are voided above.
    unspent = commitment.credits_posted - commitment.debits_posted - commitment.debits_pending
    voided = tuple(r.milestone_id for r in reserved)
    if unspent <= 0:
        log.info("project cancelled: nothing left to release", extra={"allocation_id": str(allocation.id)})
        return Release(voided=voided, released_minor=0, transfer_id=None)
    funded = await ledger_store.transfers_by_ids(session, [allocation.transfer_id])
    source_id = funded[allocation.transfer_id].debit_account_id
    released = await ledger.create_transfer(
        session,
        NewTransfer(
            id=ids.commitment_release_id_for(allocation.id),
            debit_account_id=allocation.account_id,
            credit_account_id=source_id,
            amount=unspent,
            currency=allocation.currency,
            code=TransferCode.COMMITMENT_RELEASED,
            reference=f"project:{cancellation.project_id} cancelled"[: ledger.MAX_REFERENCE],
        ),
    )
    await uow.stage(
        AllocationReleased(
            allocation_id=allocation.id,
            project_id=cancellation.project_id,
            commune_id=allocation.commune_id,
            funding_source=allocation.funding_source,
            amount_minor=unspent,
            currency=allocation.currency,
            transfer_id=released.transfer.id,
            voided_milestone_ids=voided,
            reason=cancellation.reason,
        ),
        aggregate_id=str(allocation.id),
        event_id=ids.event_id_of(allocation.id),
    )
    return Release(voided=voided, released_minor=unspent, transfer_id=released.transfer.id)
