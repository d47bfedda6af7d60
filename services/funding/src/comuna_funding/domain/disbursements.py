"""Pay a verified milestone's tranche from the allocation's earmark to the commune's account.

    allocation:<allocation_id>  --tranche_disbursement-->  commune:<commune_id>:<CUR>

A tranche that cannot be paid (unknown allocation, wrong commune or currency, more than the
earmark still holds) is recorded as a *rejected* disbursement with a reason and moves no
money. It is not an error: raising would make the event be redelivered until it is dropped,
and the refusal itself is a fact the public ledger should show, and projects must learn:
it is announced as `funding.tranche.rejected` in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.domain import ids, ledger
from comuna_funding.domain.events import TrancheDisbursed, TrancheRejected
from comuna_funding.domain.ledger import AccountSpec, NewTransfer
from comuna_funding.storage import repository
from comuna_funding.storage.models import Allocation, Disbursement
from comuna_funding.vocabulary import AccountKind, DisbursementStatus, RefusalReason, TransferCode
from comuna_platform.errors import FailedPrecondition
from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)


def commune_account_spec(commune_id: uuid.UUID, currency: str) -> AccountSpec:
    return AccountSpec(key=f"commune:{commune_id}:{currency}", currency=currency, kind=AccountKind.COMMUNE)


@dataclass(frozen=True)
class Tranche:
    project_id: uuid.UUID
    milestone_id: uuid.UUID
    allocation_id: uuid.UUID | None
    commune_id: uuid.UUID | None
    amount_minor: int
    currency: str


def refusal(tranche: Tranche, allocation: Allocation | None) -> str | None:
    """Why the tranche cannot be paid from `allocation`, or None if only the balance is left to check."""
    if allocation is None:
        return RefusalReason.ALLOCATION_UNKNOWN
    if not 0 < tranche.amount_minor <= ledger.MAX_AMOUNT:
        return RefusalReason.INVALID_AMOUNT
    if tranche.currency != allocation.currency:
        return RefusalReason.CURRENCY_MISMATCH
    if tranche.commune_id != allocation.commune_id:
        return RefusalReason.COMMUNE_MISMATCH
    return None


async def disburse_tranche(uow: UnitOfWork, tranche: Tranche) -> Disbursement:
    """Record the milestone's disbursement (completed or rejected) once; later calls return it."""
    session = uow.session
    allocation = None
    if tranche.allocation_id is not None:
        allocation = await repository.allocation_by_id(session, tranche.allocation_id, lock=True)
    existing = await repository.disbursement_by_milestone(session, tranche.milestone_id)
    if existing is not None:
        return existing
    reason = refusal(tranche, allocation)
    transfer_id = None
    if reason is None:
        assert allocation is not None
        transfer_id, reason = await _pay(session, tranche, allocation)
    return await record_outcome(uow, tranche, transfer_id, reason)


async def record_outcome(
    uow: UnitOfWork, tranche: Tranche, transfer_id: uuid.UUID | None, reason: str | None
) -> Disbursement:
    """Store the milestone's disbursement (paid by `transfer_id`, or refused for `reason`) and
    announce it in the same transaction; shared by the single-transfer and reserved-tranche paths."""
    session = uow.session
    disbursement = Disbursement(
        id=ids.disbursement_id_for(tranche.milestone_id),
        allocation_id=tranche.allocation_id,
        project_id=tranche.project_id,
        milestone_id=tranche.milestone_id,
        commune_id=tranche.commune_id,
        amount_minor=tranche.amount_minor,
        currency=tranche.currency,
        transfer_id=transfer_id,
        status=DisbursementStatus.COMPLETED if transfer_id is not None else DisbursementStatus.REJECTED,
        reason=None if transfer_id is not None else reason,
    )
    session.add(disbursement)
    await session.flush()
    if transfer_id is None:
        log.warning(
            "tranche refused",
            extra={
                "milestone_id": str(tranche.milestone_id),
                "allocation_id": str(tranche.allocation_id),
                "reason": reason,
            },
        )
        await _announce_rejection(uow, disbursement)
        return disbursement
    assert disbursement.allocation_id is not None and disbursement.commune_id is not None
    await uow.stage(
        TrancheDisbursed(
            disbursement_id=disbursement.id,
            allocation_id=disbursement.allocation_id,
            project_id=tranche.project_id,
            milestone_id=tranche.milestone_id,
            commune_id=disbursement.commune_id,
            amount_minor=tranche.amount_minor,
            currency=tranche.currency,
            transfer_id=transfer_id,
        ),
        aggregate_id=str(disbursement.allocation_id),
        event_id=ids.event_id_of(disbursement.id),
    )
    return disbursement


async def _announce_rejection(uow: UnitOfWork, disbursement: Disbursement) -> None:
    """Stage `funding.tranche.rejected`; the aggregate is the disbursement, the one id a
    refusal always has (the allocation it named may not exist or not even parse)."""
    assert disbursement.reason is not None
    await uow.stage(
        TrancheRejected(
            disbursement_id=disbursement.id,
            allocation_id=disbursement.allocation_id,
            project_id=disbursement.project_id,
            milestone_id=disbursement.milestone_id,
            commune_id=disbursement.commune_id,
            amount_minor=disbursement.amount_minor,
            currency=disbursement.currency,
            reason=disbursement.reason,
        ),
        aggregate_id=str(disbursement.id),
        event_id=ids.event_id_of(disbursement.id),
    )


async def _pay(session: AsyncSession, tranche: Tranche, allocation: Allocation) -> tuple[uuid.UUID | None, str | None]:
    """Move the tranche: (transfer id, None), or (None, reason) with nothing written."""
    savepoint = await session.begin_nested()
    try:
        commune = await ledger.ensure_account(session, commune_account_spec(allocation.commune_id, allocation.currency))
        outcome = await ledger.create_transfer(
            session,
            NewTransfer(
                id=ids.disbursement_transfer_id_for(tranche.milestone_id),
                debit_account_id=allocation.account_id,
                credit_account_id=commune.id,
                amount=tranche.amount_minor,
                currency=allocation.currency,
                code=TransferCode.TRANCHE_DISBURSEMENT,
                reference=f"project:{tranche.project_id} milestone:{tranche.milestone_id}",
            ),
        )
    except FailedPrecondition as exc:
        # The ledger refused to move the money (the earmark holds too little): not retryable.
        await savepoint.rollback()
        return None, RefusalReason.EXCEEDS_ALLOCATION if exc.code == "exceeds_credits" else exc.code
    await savepoint.commit()
    return outcome.transfer.id, None
