"""A remote funder's commitment, settled in the ledger once its source has answered for good.

`domain.cofunding` creates a remote funder's allocation as `reserving`: a PENDING transfer with
a timeout holds the money from `source:<funder>:<CUR>` on the allocation's commitment account.
The saga (`comuna_funding.commitments`) asks the funder's own system and then settles here,
each settlement in one unit of work under the allocation's row lock:

    source committed       post the pending transfer     status committed, AllocationCreated staged
    source refused         void it                       status refused, reason the source's
    ledger released it     (expired by the ledger,       status failed (or refused when the source
    first                   or voided by an operator)     is known to have refused)

The post and the void have ids derived from the allocation and the ledger resolves a pending
transfer at most once (a unique key), so a settlement repeated after a crash, or raced by a
second replica, finds the allocation settled and does nothing. A post or void the ledger
refuses because the pending transfer timed out meanwhile settles nothing: the ledger's expiry
worker releases it, and the next round ends the allocation as failed.

Every call to a source is recorded in `source_calls`; those whose outcome the ledger and the
source may disagree on are flagged `needs_reconciliation` (docs/operations.md).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.domain import ids, ledger
from comuna_funding.domain.events import AllocationCreated
from comuna_funding.domain.ledger import NewTransfer, TransferOutcome
from comuna_funding.storage import commitments as store
from comuna_funding.storage import ledger_store
from comuna_funding.storage.ledger_store import TransferRow
from comuna_funding.storage.models import Allocation
from comuna_funding.vocabulary import (
    AllocationStatus,
    CommitmentReason,
    SourceCallOutcome,
    SourceOperation,
    TransferKind,
)
from comuna_platform.ids import new_id
from comuna_platform.uow import Staged, UnitOfWork

log = logging.getLogger(__name__)

# The ledger's refusals that mean "this pending transfer can no longer be posted or voided by
# us": it timed out (the expiry worker will release it) or something resolved it first.
_TOO_LATE = frozenset({"pending_transfer_expired", "pending_transfer_already_resolved"})
MAX_DETAIL = 1000


@dataclass(frozen=True)
class FunderEndpoint:
    """Where and how to reach a remote funder (its `funders` row, credentials by reference)."""

    name: str
    endpoint: str
    credentials_ref: str
    tls: bool
    deadline_ms: int

    @property
    def deadline_seconds(self) -> float:
        return self.deadline_ms / 1000


@dataclass(frozen=True)
class Reserving:
    """A reserving allocation as read at `read_at` (the database's clock): its pending
    commitment and, if the ledger already resolved it, the resolving transfer."""

    allocation_id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    commune_code: str
    candidate_id: uuid.UUID
    amount_minor: int
    currency: str
    funder: FunderEndpoint
    pending: TransferRow
    resolution: TransferRow | None
    read_at: datetime

    @property
    def reservation_id(self) -> uuid.UUID:
        """The source's reservation is named by the pending transfer: the same id on both sides."""
        return self.pending.id

    @property
    def reference(self) -> str:
        return f"consultation:{self.consultation_id} commune:{self.commune_code} candidate:{self.candidate_id}"

    @property
    def seconds_left(self) -> float | None:
        """Until the pending commitment times out, as of `read_at`; None if it never does."""
        if self.pending.timeout_seconds is None:
            return None
        due = self.pending.created_at + timedelta(seconds=self.pending.timeout_seconds)
        return (due - self.read_at).total_seconds()


@dataclass(frozen=True)
class Call:
    """One call to a source and what came of it (a `source_calls` row)."""

    operation: SourceOperation
    outcome: SourceCallOutcome
    detail: str
    at: datetime
    needs_reconciliation: bool = False


class Settlement(StrEnum):
    COMMITTED = "committed"
    REFUSED = "refused"
    FAILED = "failed"
    # Nothing settled: the pending commitment timed out before we could post or void it (the
    # expiry worker releases it; the next round fails the allocation).
    TOO_LATE = "too_late"
    # Someone settled it first (another replica, or an earlier run that died after committing).
    ALREADY = "already"


async def reserving(session: AsyncSession, limit: int) -> list[Reserving]:
    """Up to `limit` reserving allocations of remote funders, oldest first."""
    rows = await store.reserving_allocations(session, limit)
    if not rows:
        return []
    pending_ids = [allocation.transfer_id for allocation, _ in rows]
    pendings = await ledger_store.transfers_by_ids(session, pending_ids)
    resolutions = await ledger_store.resolutions_of(session, pending_ids)
    now = await ledger_store.transaction_time(session)
    found: list[Reserving] = []
    for allocation, funder in rows:
        pending = pendings.get(allocation.transfer_id)
        if pending is None or pending.kind != TransferKind.PENDING or funder.endpoint is None:
            # Allocations are created with their transfer in one transaction; only a bug gets here.
            log.error(
                "reserving allocation without a pending commitment or an endpoint",
                extra={"allocation_id": str(allocation.id), "funder": funder.name},
            )
            continue
        found.append(
            Reserving(
                allocation_id=allocation.id,
                consultation_id=allocation.consultation_id,
                commune_id=allocation.commune_id,
                commune_code=allocation.commune_code,
                candidate_id=allocation.candidate_id,
                amount_minor=allocation.amount_minor,
                currency=allocation.currency,
                funder=FunderEndpoint(
                    name=funder.name,
                    endpoint=funder.endpoint,
                    credentials_ref=funder.credentials_ref or "",
                    tls=funder.tls,
                    deadline_ms=funder.deadline_ms,
                ),
                pending=pending,
                resolution=resolutions.get(pending.id),
                read_at=now,
            )
        )
    return found


async def record_calls(session: AsyncSession, item: Reserving, calls: Sequence[Call]) -> None:
    await store.insert_source_calls(
        session,
        [
            {
                "id": new_id(),
                "allocation_id": item.allocation_id,
                "funder": item.funder.name,
                "operation": call.operation.value,
                "outcome": call.outcome.value,
                "detail": call.detail[:MAX_DETAIL],
                "needs_reconciliation": call.needs_reconciliation,
                "at": call.at,
            }
            for call in calls
        ],
    )


def allocation_created(row: Allocation) -> Staged:
    """`funding.allocation.created` for a committed allocation, as `allocate_grants` and
    `cofunding` stage it (same deterministic event id: one event per allocation)."""
    return Staged(
        AllocationCreated(
            allocation_id=row.id,
            consultation_id=row.consultation_id,
            commune_id=row.commune_id,
            commune_code=row.commune_code,
            candidate_id=row.candidate_id,
            title=row.title,
            amount_minor=row.amount_minor,
            currency=row.currency,
            funding_source=row.funding_source,
            transfer_id=row.transfer_id,
        ),
        aggregate_id=str(row.id),
        event_id=ids.event_id_of(row.id),
    )


def _resolving(item: Reserving, kind: TransferKind, transfer_id: uuid.UUID) -> NewTransfer:
    # Accounts, currency and amount are the pending transfer's (a post takes all of it).
    return NewTransfer(
        id=transfer_id,
        debit_account_id=None,
        credit_account_id=None,
        amount=None,
        currency=None,
        code=item.pending.code,
        reference=item.pending.reference,
        kind=kind,
        pending_id=item.pending.id,
    )


async def _resolve(
    session: AsyncSession, item: Reserving, kind: TransferKind, transfer_id: uuid.UUID
) -> TransferRow | None:
    """Post or void the pending commitment (or find that it was already, by this very id);
    None when the ledger will not let us any more (timed out, or resolved otherwise)."""
    [decision] = await ledger.submit_transfers(session, [_resolving(item, kind, transfer_id)])
    if isinstance(decision, TransferOutcome):
        return decision.transfer
    if decision.code in _TOO_LATE:
        return None
    raise decision


async def _locked_reserving(session: AsyncSession, item: Reserving) -> Allocation | None:
    row = await store.lock_allocation(session, item.allocation_id)
    if row is None or row.status != AllocationStatus.RESERVING.value:
        return None
    return row


async def settle_committed(uow: UnitOfWork, item: Reserving, calls: Sequence[Call]) -> Settlement:
    """The source committed: post the pending commitment, status committed, stage the event.
    Too late for the ledger (timed out meanwhile): the commit is recorded flagged instead."""
    session = uow.session
    row = await _locked_reserving(session, item)
    if row is None:
        await record_calls(session, item, calls)
        return Settlement.ALREADY
    posted = await _resolve(session, item, TransferKind.POST, ids.commitment_post_id_for(item.allocation_id))
    if posted is None:
        existing = (await ledger_store.resolutions_of(session, [item.pending.id])).get(item.pending.id)
        if existing is not None and existing.kind == TransferKind.POST:
            posted = existing  # an operator posted it by hand: the source agrees, so adopt it
    if posted is None:
        log.error(
            "a source committed after the ledger's reservation timed out: flagged for reconciliation",
            extra={"allocation_id": str(item.allocation_id), "funder": item.funder.name},
        )
        await record_calls(session, item, [_flagged(c, "late: the ledger's reservation had timed out") for c in calls])
        return Settlement.TOO_LATE
    await store.settle(
        session, item.allocation_id, AllocationStatus.COMMITTED, resolution_transfer_id=posted.id, reason=None
    )
    await record_calls(session, item, calls)
    await uow.stage_all([allocation_created(row)])
    return Settlement.COMMITTED


async def settle_refused(uow: UnitOfWork, item: Reserving, reason: str, calls: Sequence[Call]) -> Settlement:
    """The source holds nothing for this allocation: void the pending commitment, status
    refused with `reason`. If the ledger released it first (expired), that release is adopted."""
    session = uow.session
    row = await _locked_reserving(session, item)
    if row is None:
        await record_calls(session, item, calls)
        return Settlement.ALREADY
    voided = await _resolve(session, item, TransferKind.VOID, ids.commitment_void_id_for(item.allocation_id))
    if voided is None:
        existing = (await ledger_store.resolutions_of(session, [item.pending.id])).get(item.pending.id)
        if existing is None:
            # Timed out, not yet expired: nothing to void by us; the next round ends it.
            await record_calls(session, item, calls)
            return Settlement.TOO_LATE
        if existing.kind == TransferKind.POST:
            # An operator posted what the source refuses to pay: only people can sort that out.
            log.error(
                "the source refused a commitment the ledger has posted: flagged for reconciliation",
                extra={"allocation_id": str(item.allocation_id), "funder": item.funder.name},
            )
            await record_calls(session, item, [_flagged(c, "the ledger has posted it") for c in calls])
            return Settlement.TOO_LATE
        voided = existing
    await store.settle(
        session, item.allocation_id, AllocationStatus.REFUSED, resolution_transfer_id=voided.id, reason=reason
    )
    await record_calls(session, item, calls)
    return Settlement.REFUSED


async def settle_released(
    uow: UnitOfWork, item: Reserving, status: AllocationStatus, reason: str, calls: Sequence[Call]
) -> Settlement:
    """The ledger released the pending commitment (`item.resolution`, an expire or a void) before
    the source confirmed: status `status` (failed, or refused if the source said it had refused)."""
    assert item.resolution is not None and item.resolution.kind != TransferKind.POST
    assert status in (AllocationStatus.FAILED, AllocationStatus.REFUSED)
    session = uow.session
    row = await _locked_reserving(session, item)
    if row is None:
        await record_calls(session, item, calls)
        return Settlement.ALREADY
    await store.settle(session, item.allocation_id, status, resolution_transfer_id=item.resolution.id, reason=reason)
    await record_calls(session, item, calls)
    return Settlement(status.value)


def _flagged(call: Call, why: str) -> Call:
    return Call(call.operation, call.outcome, f"{call.detail} ({why})", call.at, needs_reconciliation=True)


def released_reason(item: Reserving) -> CommitmentReason:
    """Why the ledger released a pending commitment the source never confirmed."""
    assert item.resolution is not None
    return CommitmentReason.TIMED_OUT if item.resolution.kind == TransferKind.EXPIRE else CommitmentReason.RELEASED
