"""REST transport of the funding service: the public, read-only view of where the money went.

No authentication: fund flows are open data, which is the point of the ledger. Nothing here
writes; money only moves in response to certified consultations and verified milestones.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from comuna_funding.api.schemas import (
    AccountFlags,
    AccountOut,
    AccountPage,
    AccountRef,
    AllocationDetail,
    AllocationOut,
    AllocationPage,
    DisbursementOut,
    LedgerTotalOut,
    LedgerTotals,
    Money,
    TransferOut,
    TransferPage,
)
from comuna_funding.domain import ledger
from comuna_funding.storage import ledger_store, repository
from comuna_funding.storage.ledger_store import AccountRow, TransferRow
from comuna_funding.storage.models import ACCOUNT_KINDS, Allocation, Disbursement
from comuna_platform.errors import NotFound
from comuna_platform.http.deps import RuntimeDep

router = APIRouter(prefix="/v1", tags=["funding"])

Limit = Annotated[int, Query(ge=1, le=500)]
AccountKind = Annotated[str | None, Query(pattern="^(" + "|".join(ACCOUNT_KINDS) + ")$")]


def _allocation(allocation: Allocation, *, debits_posted: int, credits_posted: int) -> AllocationOut:
    return AllocationOut(
        id=allocation.id,
        consultation_id=allocation.consultation_id,
        commune_id=allocation.commune_id,
        commune_code=allocation.commune_code,
        candidate_id=allocation.candidate_id,
        title=allocation.title,
        funding_source=allocation.funding_source,
        amount_minor=allocation.amount_minor,
        currency=allocation.currency,
        # The ledger is the source of truth: what left the earmark is what was disbursed.
        disbursed_minor=debits_posted,
        remaining_minor=credits_posted - debits_posted,
        account_id=allocation.account_id,
        transfer_id=allocation.transfer_id,
        created_at=allocation.created_at,
    )


def _disbursement(d: Disbursement) -> DisbursementOut:
    return DisbursementOut(
        id=d.id,
        project_id=d.project_id,
        milestone_id=d.milestone_id,
        amount_minor=d.amount_minor,
        currency=d.currency,
        status=d.status,
        reason=d.reason,
        transfer_id=d.transfer_id,
        created_at=d.created_at,
    )


def _account(a: AccountRow) -> AccountOut:
    return AccountOut(
        id=a.id,
        key=a.key,
        kind=a.kind,
        currency=a.currency,
        flags=AccountFlags(
            debits_must_not_exceed_credits=a.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=a.credits_must_not_exceed_debits,
        ),
        debits_posted_minor=a.debits_posted,
        credits_posted_minor=a.credits_posted,
        balance_minor=a.credits_posted - a.debits_posted,
        created_at=a.created_at,
    )


def _transfer(t: TransferRow, keys: dict[uuid.UUID, str]) -> TransferOut:
    return TransferOut(
        id=t.id,
        seq=t.seq,
        date=t.created_at,
        value=Money(amount_minor=t.amount, currency=t.currency),
        payer=AccountRef(id=t.debit_account_id, key=keys[t.debit_account_id]),
        payee=AccountRef(id=t.credit_account_id, key=keys[t.credit_account_id]),
        code=t.code,
        reference=t.reference,
    )


@router.get("/allocations", response_model=AllocationPage, summary="Allocations, by consultation or commune")
async def list_allocations(
    runtime: RuntimeDep,
    consultation_id: uuid.UUID | None = None,
    commune_id: uuid.UUID | None = None,
    after: uuid.UUID | None = None,
    limit: Limit = 100,
) -> AllocationPage:
    async with runtime.db.transaction() as session:
        rows = await repository.list_allocations(
            session, consultation_id=consultation_id, commune_id=commune_id, after=after, limit=limit
        )
    items = [
        _allocation(allocation, debits_posted=account.debits_posted, credits_posted=account.credits_posted)
        for allocation, account in rows
    ]
    return AllocationPage(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.get(
    "/allocations/{allocation_id}",
    response_model=AllocationDetail,
    summary="One allocation, what was disbursed from it, and every tranche decision",
)
async def get_allocation(allocation_id: uuid.UUID, runtime: RuntimeDep) -> AllocationDetail:
    async with runtime.db.transaction() as session:
        allocation = await repository.allocation_by_id(session, allocation_id)
        if allocation is None:
            raise NotFound(f"allocation {allocation_id} does not exist", code="allocation_not_found")
        account = await ledger_store.account_by_id(session, allocation.account_id)
        disbursements = await repository.disbursements_of(session, allocation_id)
    assert account is not None  # foreign key
    summary = _allocation(allocation, debits_posted=account.debits_posted, credits_posted=account.credits_posted)
    return AllocationDetail(**summary.model_dump(), disbursements=[_disbursement(d) for d in disbursements])


@router.get("/accounts", response_model=AccountPage, summary="Ledger accounts, optionally by key or kind")
async def list_accounts(
    runtime: RuntimeDep,
    key: Annotated[str | None, Query(max_length=200, examples=["treasury:national:USD"])] = None,
    kind: AccountKind = None,
    after: uuid.UUID | None = None,
    limit: Limit = 100,
) -> AccountPage:
    async with runtime.db.transaction() as session:
        rows = await ledger_store.list_accounts(session, key=key, kind=kind, after=after, limit=limit)
    return AccountPage(items=[_account(a) for a in rows], next_after=rows[-1].id if len(rows) == limit else None)


@router.get("/accounts/{account_id}", response_model=AccountOut, summary="An account and its balances")
async def get_account(account_id: uuid.UUID, runtime: RuntimeDep) -> AccountOut:
    async with runtime.db.transaction() as session:
        account = await ledger_store.account_by_id(session, account_id)
    if account is None:
        raise NotFound(f"account {account_id} does not exist", code="account_not_found")
    return _account(account)


@router.get(
    "/transfers",
    response_model=TransferPage,
    summary="Transfers in ledger order, all or those of one account (OCDS-like transactions)",
)
async def list_transfers(
    runtime: RuntimeDep,
    account_id: uuid.UUID | None = None,
    # Bounded by the bigint column: a larger cursor is not one this service handed out.
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="`next_after` of the previous page.")] = 0,
    limit: Limit = 100,
) -> TransferPage:
    async with runtime.db.transaction() as session:
        if account_id is not None and await ledger_store.account_by_id(session, account_id) is None:
            raise NotFound(f"account {account_id} does not exist", code="account_not_found")
        rows = await ledger_store.transfers_page(session, account_id=account_id, after_seq=after, limit=limit)
        keys = await ledger_store.account_keys(
            session, [aid for t in rows for aid in (t.debit_account_id, t.credit_account_id)]
        )
    return TransferPage(
        items=[_transfer(t, keys) for t in rows], next_after=rows[-1].seq if len(rows) == limit else None
    )


@router.get(
    "/ledger/totals",
    response_model=LedgerTotals,
    summary="Per currency: total debits, total credits and transfers; equal by construction",
)
async def ledger_totals(runtime: RuntimeDep) -> LedgerTotals:
    async with runtime.db.transaction() as session:
        totals = await ledger.ledger_totals(session)
    items = [
        LedgerTotalOut(
            currency=t.currency,
            debits_minor=t.debits_minor,
            credits_minor=t.credits_minor,
            transfers=t.transfers,
            transferred_minor=t.transferred_minor,
            balanced=t.balanced,
        )
        for t in totals
    ]
    return LedgerTotals(items=items, balanced=all(t.balanced for t in items))
