"""Reads of the public ledger, shared by REST and gRPC so that each rule exists once.

What an allocation "has disbursed" is what left its earmark account: the ledger is the source
of truth, not the disbursement records (a rejected tranche moved nothing).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from comuna_funding.storage import ledger_store, repository
from comuna_funding.storage.ledger_store import AccountRow, TransferRow
from comuna_funding.storage.models import Account, Allocation, Disbursement
from comuna_funding.vocabulary import AccountKind
from comuna_platform.errors import NotFound
from comuna_platform.uow import UnitOfWork


@dataclass(frozen=True)
class AllocationView:
    allocation: Allocation
    disbursed_minor: int
    remaining_minor: int


def _view(allocation: Allocation, earmark: Account | AccountRow, returned: int = 0) -> AllocationView:
    """Disbursed: what left the commitment for the project (money returned to the funder, by a
    cancellation or a recount, is not); remaining: what it still holds."""
    return AllocationView(allocation, earmark.debits_posted - returned, earmark.credits_posted - earmark.debits_posted)


def allocation_not_found(allocation_id: uuid.UUID) -> NotFound:
    return NotFound(f"allocation {allocation_id} does not exist", code="allocation_not_found")


async def allocation(uow: UnitOfWork, allocation_id: uuid.UUID) -> AllocationView:
    found = await repository.allocation_by_id(uow.session, allocation_id)
    if found is None:
        raise allocation_not_found(allocation_id)
    earmark = await ledger_store.account_by_id(uow.session, found.account_id)
    assert earmark is not None  # foreign key
    returned = await ledger_store.returned_from(uow.session, [found.account_id])
    return _view(found, earmark, returned.get(found.account_id, 0))


@dataclass(frozen=True)
class AllocationDetail:
    view: AllocationView
    disbursements: Sequence[Disbursement]


async def allocation_detail(uow: UnitOfWork, allocation_id: uuid.UUID) -> AllocationDetail:
    view = await allocation(uow, allocation_id)
    return AllocationDetail(view, await repository.disbursements_of(uow.session, allocation_id))


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    more: bool


async def list_allocations(
    uow: UnitOfWork,
    *,
    consultation_id: uuid.UUID | None,
    commune_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> Page[AllocationView]:
    rows = await repository.list_allocations(
        uow.session, consultation_id=consultation_id, commune_id=commune_id, after=after, limit=limit + 1
    )
    page = rows[:limit]
    returned = await ledger_store.returned_from(uow.session, [a.account_id for a, _ in page])
    return Page([_view(a, earmark, returned.get(a.account_id, 0)) for a, earmark in page], len(rows) > limit)


async def list_accounts(
    uow: UnitOfWork, *, key: str | None, kind: AccountKind | None, after: uuid.UUID | None, limit: int
) -> Page[AccountRow]:
    rows = await ledger_store.list_accounts(uow.session, key=key, kind=kind, after=after, limit=limit + 1)
    return Page(list(rows[:limit]), len(rows) > limit)


async def account(uow: UnitOfWork, account_id: uuid.UUID) -> AccountRow:
    found = await ledger_store.account_by_id(uow.session, account_id)
    if found is None:
        raise NotFound(f"account {account_id} does not exist", code="account_not_found")
    return found


@dataclass(frozen=True)
class TransferPage:
    items: list[TransferRow]
    more: bool
    # Every account the page's transfers touch: id -> key.
    keys: dict[uuid.UUID, str]


async def transfers_page(uow: UnitOfWork, *, account_id: uuid.UUID | None, after_seq: int, limit: int) -> TransferPage:
    """Transfers in ledger order, all or those of one account (404 if it does not exist)."""
    if account_id is not None:
        await account(uow, account_id)
    rows = await ledger_store.transfers_page(uow.session, account_id=account_id, after_seq=after_seq, limit=limit + 1)
    rows = list(rows)
    more, rows = len(rows) > limit, rows[:limit]
    keys = await ledger_store.account_keys(
        uow.session, [aid for t in rows for aid in (t.debit_account_id, t.credit_account_id)]
    )
    return TransferPage(rows, more, keys)
