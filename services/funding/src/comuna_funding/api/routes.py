"""REST transport of the funding service: the public, read-only view of where the money went.

No authentication: fund flows are open data, which is the point of the ledger. Nothing here
writes (the ledger's writes are `ledger_routes`, for national operators).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from comuna_funding.api.schemas import (
    AccountFlags,
    AccountOut,
    AccountPage,
    AllocationDetail,
    AllocationOut,
    AllocationPage,
    DisbursementOut,
    LedgerTotalOut,
    LedgerTotals,
    TransferOut,
    TransferPage,
)
from comuna_funding.domain import ledger, queries
from comuna_funding.domain.journal import format_rate
from comuna_funding.domain.queries import AllocationView
from comuna_funding.storage.ledger_store import AccountRow, TransferRow
from comuna_funding.storage.models import Disbursement
from comuna_funding.vocabulary import AccountKind, AllocationStatus, DisbursementStatus
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.paging import decode_page_token, encode_page_token

router = APIRouter(prefix="/v1", tags=["funding"])

Limit = Annotated[int, Query(ge=1, le=500)]
PageToken = Annotated[str, Query(max_length=512, description="`next_page_token` of the previous page")]


def _allocation(view: AllocationView) -> AllocationOut:
    allocation = view.allocation
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
        disbursed_minor=view.disbursed_minor,
        remaining_minor=view.remaining_minor,
        account_id=allocation.account_id,
        transfer_id=allocation.transfer_id,
        status=AllocationStatus(allocation.status),
        rank=allocation.rank,
        generation=allocation.generation,
        created_at=allocation.created_at,
    )


def _disbursement(d: Disbursement) -> DisbursementOut:
    return DisbursementOut(
        id=d.id,
        project_id=d.project_id,
        milestone_id=d.milestone_id,
        amount_minor=d.amount_minor,
        currency=d.currency,
        status=DisbursementStatus(d.status),
        reason=d.reason,
        transfer_id=d.transfer_id,
        created_at=d.created_at,
    )


def account_out(a: AccountRow) -> AccountOut:
    return AccountOut(
        id=a.id,
        key=a.key,
        kind=AccountKind(a.kind),
        currency=a.currency,
        flags=AccountFlags(
            debits_must_not_exceed_credits=a.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=a.credits_must_not_exceed_debits,
        ),
        closed=a.closed,
        debits_posted_minor=a.debits_posted,
        credits_posted_minor=a.credits_posted,
        debits_pending_minor=a.debits_pending,
        credits_pending_minor=a.credits_pending,
        balance_minor=a.credits_posted - a.debits_posted,
        created_at=a.created_at,
    )


def transfer_fields(t: TransferRow, keys: dict[uuid.UUID, str]) -> dict[str, Any]:
    """A transfer's REST fields as plain data: validated in one pass with the rest of a batch's
    answer (pydantic's core is far faster on a whole document than model by model)."""
    exchange = None
    if t.exchange_rate is not None and t.exchange_base_id is not None and t.exchange_counter_id is not None:
        exchange = {
            "base_id": t.exchange_base_id,
            "counter_id": t.exchange_counter_id,
            "rate": format_rate(t.exchange_rate),
        }
    return {
        "id": t.id,
        "seq": t.seq,
        "date": t.created_at,
        "value": {"amount_minor": t.amount, "currency": t.currency},
        "payer": {"id": t.debit_account_id, "key": keys[t.debit_account_id]},
        "payee": {"id": t.credit_account_id, "key": keys[t.credit_account_id]},
        "code": t.code,
        "reference": t.reference,
        "kind": t.kind,
        "pending_id": t.pending_id,
        "timeout_seconds": t.timeout_seconds,
        "exchange": exchange,
    }


def transfer_out(t: TransferRow, keys: dict[uuid.UUID, str]) -> TransferOut:
    return TransferOut.model_validate(transfer_fields(t, keys))


@router.get("/allocations", response_model=AllocationPage, summary="Allocations, by consultation or commune")
async def list_allocations(
    uow: UnitOfWorkDep,
    consultation_id: uuid.UUID | None = None,
    commune_id: uuid.UUID | None = None,
    page_token: PageToken = "",
    limit: Limit = 100,
) -> AllocationPage:
    after = decode_page_token(page_token, [uuid.UUID])
    page = await queries.list_allocations(
        uow, consultation_id=consultation_id, commune_id=commune_id, after=after[0] if after else None, limit=limit
    )
    items = [_allocation(view) for view in page.items]
    return AllocationPage(items=items, next_page_token=encode_page_token(items[-1].id) if page.more else None)


@router.get(
    "/allocations/{allocation_id}",
    response_model=AllocationDetail,
    summary="One allocation, what was disbursed from it, and every tranche decision",
)
async def get_allocation(allocation_id: uuid.UUID, uow: UnitOfWorkDep) -> AllocationDetail:
    detail = await queries.allocation_detail(uow, allocation_id)
    return AllocationDetail(
        **_allocation(detail.view).model_dump(), disbursements=[_disbursement(d) for d in detail.disbursements]
    )


@router.get("/accounts", response_model=AccountPage, summary="Ledger accounts, optionally by key or kind")
async def list_accounts(
    uow: UnitOfWorkDep,
    key: Annotated[str | None, Query(max_length=200, examples=["treasury:national:USD"])] = None,
    kind: AccountKind | None = None,
    page_token: PageToken = "",
    limit: Limit = 100,
) -> AccountPage:
    after = decode_page_token(page_token, [uuid.UUID])
    page = await queries.list_accounts(uow, key=key, kind=kind, after=after[0] if after else None, limit=limit)
    return AccountPage(
        items=[account_out(a) for a in page.items],
        next_page_token=encode_page_token(page.items[-1].id) if page.more else None,
    )


@router.get("/accounts/{account_id}", response_model=AccountOut, summary="An account and its balances")
async def get_account(account_id: uuid.UUID, uow: UnitOfWorkDep) -> AccountOut:
    return account_out(await queries.account(uow, account_id))


@router.get(
    "/transfers",
    response_model=TransferPage,
    summary="Transfers in ledger order, all or those of one account (OCDS-like transactions)",
)
async def list_transfers(
    uow: UnitOfWorkDep,
    account_id: uuid.UUID | None = None,
    page_token: PageToken = "",
    limit: Limit = 100,
) -> TransferPage:
    after = decode_page_token(page_token, [int])
    page = await queries.transfers_page(uow, account_id=account_id, after_seq=after[0] if after else 0, limit=limit)
    return TransferPage(
        items=[transfer_out(t, page.keys) for t in page.items],
        next_page_token=encode_page_token(page.items[-1].seq) if page.more else None,
    )


@router.get(
    "/ledger/totals",
    response_model=LedgerTotals,
    summary="Per currency: total debits, total credits and transfers; equal by construction",
)
async def ledger_totals(uow: UnitOfWorkDep) -> LedgerTotals:
    totals = await ledger.ledger_totals(uow.session)
    items = [
        LedgerTotalOut(
            currency=t.currency,
            debits_minor=t.debits_minor,
            credits_minor=t.credits_minor,
            transfers=t.transfers,
            transferred_minor=t.transferred_minor,
            debits_pending_minor=t.debits_pending_minor,
            credits_pending_minor=t.credits_pending_minor,
            reserved_minor=t.reserved_minor,
            balanced=t.balanced,
        )
        for t in totals
    ]
    return LedgerTotals(items=items, balanced=all(t.balanced for t in items))
