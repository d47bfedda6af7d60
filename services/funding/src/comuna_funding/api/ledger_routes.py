"""REST transport of the ledger's writes: open and close accounts, create transfers one at a
time or in batches (docs/ledger.md). National operators only: the ledger is the country's
shared infrastructure; the funders' own systems plug in as sources, not through these.

A single transfer answers 201 (created), 200 (the same transfer resent) or a problem, and is
written by group commit with those of concurrent requests (`transfer_commits`); a batch
answers 200 with one result per transfer, linked chains together, and writes nothing of a
refused transfer.
"""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from comuna_funding.api.routes import account_out, transfer_fields, transfer_out
from comuna_funding.api.schemas import (
    AccountIn,
    AccountOut,
    TransferBatchIn,
    TransferBatchOut,
    TransferIn,
    TransferOut,
)
from comuna_funding.domain import ledger
from comuna_funding.domain.ledger import AccountSpec, Decision, Exchange, NewTransfer, TransferOutcome
from comuna_funding.storage import ledger_store
from comuna_funding.transfer_commits import TransferCommits
from comuna_funding.vocabulary import TransferKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import require_assignment
from comuna_platform.auth.roles import Role
from comuna_platform.http.deps import UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["ledger"])

Operator = Annotated[Caller, require_assignment(Role.OPERATOR)]


def _new_transfer(body: TransferIn) -> NewTransfer:
    exchange = body.exchange
    return NewTransfer(
        id=body.id,
        debit_account_id=body.debit_account_id,
        credit_account_id=body.credit_account_id,
        amount=body.amount_minor,
        currency=body.currency,
        code=body.code,
        reference=body.reference,
        kind=TransferKind(body.kind),
        pending_id=body.pending_id,
        timeout_seconds=body.timeout_seconds,
        exchange=None if exchange is None else Exchange(exchange.base_id, exchange.counter_id, Decimal(exchange.rate)),
        linked=body.linked,
    )


@router.post("/accounts", response_model=AccountOut, status_code=201, summary="Open an account (idempotent by key)")
async def open_account(body: AccountIn, uow: UnitOfWorkDep, _: Operator, response: Response) -> AccountOut:
    spec = AccountSpec(
        key=body.key,
        currency=body.currency,
        kind=body.kind,
        debits_must_not_exceed_credits=body.flags.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=body.flags.credits_must_not_exceed_debits,
    )
    existed = await ledger_store.accounts_by_keys(uow.session, [body.key])
    account = await ledger.ensure_account(uow.session, spec)
    if body.key in existed:
        response.status_code = 200
    return account_out(account)


@router.post(
    "/accounts/{account_id}/close",
    response_model=AccountOut,
    summary="Close an account for good (idempotent); refused while it holds pending transfers",
)
async def close_account(account_id: uuid.UUID, uow: UnitOfWorkDep, _: Operator) -> AccountOut:
    return account_out(await ledger.close_account(uow.session, account_id))


async def get_transfer_commits(request: Request) -> TransferCommits:
    commits: TransferCommits = request.app.state.transfer_commits
    return commits


TransferCommitsDep = Annotated[TransferCommits, Depends(get_transfer_commits)]


@router.post(
    "/transfers",
    response_model=TransferOut,
    status_code=201,
    summary="Create one transfer: 201 created, 200 the same transfer resent, a problem if refused",
)
async def create_transfer(
    body: TransferIn, commits: TransferCommitsDep, _: Operator, response: Response
) -> TransferOut:
    # Written with the transfers of concurrent requests, in one transaction (`transfer_commits`).
    submitted = await commits.submit(_new_transfer(body))
    decision = submitted.decision
    if not isinstance(decision, TransferOutcome):
        raise decision
    if decision.status == "exists":
        response.status_code = 200
    return transfer_out(decision.transfer, submitted.account_keys)


def _result(transfer: NewTransfer, decision: Decision, keys: dict[uuid.UUID, str]) -> dict[str, Any]:
    if isinstance(decision, TransferOutcome):
        return {
            "id": transfer.id,
            "result": decision.status,
            "transfer": transfer_fields(decision.transfer, keys),
            "error": None,
        }
    error = {"status": decision.status, "code": decision.code, "detail": decision.detail}
    return {"id": transfer.id, "result": "refused", "transfer": None, "error": error}


@router.post(
    "/transfers/batch",
    response_model=TransferBatchOut,
    summary="Create up to 4,000 transfers: one result each; linked chains succeed or fail together",
)
async def create_transfers(body: TransferBatchIn, uow: UnitOfWorkDep, _: Operator) -> TransferBatchOut:
    batch = [_new_transfer(t) for t in body.transfers]
    decisions = await ledger.submit_transfers(uow.session, batch)
    stored = [d.transfer for d in decisions if isinstance(d, TransferOutcome)]
    keys = await ledger_store.account_keys(
        uow.session, [aid for t in stored for aid in (t.debit_account_id, t.credit_account_id)]
    )
    results = [_result(t, d, keys) for t, d in zip(batch, decisions, strict=True)]
    counts = Counter(r["result"] for r in results)
    # One validation of the whole answer: thousands of results, built as plain data.
    return TransferBatchOut.model_validate(
        {"results": results, "created": counts["created"], "exists": counts["exists"], "refused": counts["refused"]}
    )
