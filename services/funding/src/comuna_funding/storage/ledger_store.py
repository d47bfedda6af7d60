"""SQL for the ledger: account rows, transfer rows and the aggregate queries over them.

Plain data access; which transfers are allowed is decided in `comuna_funding.domain.ledger`.
Statements take whole batches (one round trip for thousands of rows) because one certified
consultation allocates to every commune of the country at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.storage.models import Account, Transfer

T = TypeVar("T")
# Well under asyncpg's 32,767 bind parameters per statement for IN (...) lists.
CHUNK = 5000


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class AccountRow:
    id: uuid.UUID
    key: str
    currency: str
    kind: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    debits_posted: int
    credits_posted: int
    created_at: datetime


@dataclass(frozen=True)
class TransferRow:
    id: uuid.UUID
    seq: int
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    currency: str
    code: str
    reference: str
    created_at: datetime


def _account(row: Any) -> AccountRow:
    return AccountRow(
        id=row.id,
        key=row.key,
        currency=row.currency,
        kind=row.kind,
        debits_must_not_exceed_credits=row.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=row.credits_must_not_exceed_debits,
        debits_posted=row.debits_posted,
        credits_posted=row.credits_posted,
        created_at=row.created_at,
    )


def _transfer(row: Any) -> TransferRow:
    return TransferRow(
        id=row.id,
        seq=row.seq,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=row.amount,
        currency=row.currency,
        code=row.code,
        reference=row.reference,
        created_at=row.created_at,
    )


_ACCOUNTS = Account.__table__
_TRANSFERS = Transfer.__table__


async def insert_accounts_if_absent(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert accounts whose key is new; existing keys are left untouched."""
    if rows:
        await session.execute(pg_insert(Account).on_conflict_do_nothing(), list(rows))


async def accounts_by_keys(session: AsyncSession, keys: Sequence[str]) -> dict[str, AccountRow]:
    found: dict[str, AccountRow] = {}
    for part in chunked(keys):
        result = await session.execute(select(_ACCOUNTS).where(_ACCOUNTS.c.key.in_(part)))
        found.update({row.key: _account(row) for row in result})
    return found


async def account_by_id(session: AsyncSession, account_id: uuid.UUID) -> AccountRow | None:
    row = (await session.execute(select(_ACCOUNTS).where(_ACCOUNTS.c.id == account_id))).first()
    return _account(row) if row is not None else None


async def list_accounts(
    session: AsyncSession, *, key: str | None, kind: str | None, after: uuid.UUID | None, limit: int
) -> list[AccountRow]:
    query = select(_ACCOUNTS).order_by(_ACCOUNTS.c.id).limit(limit)
    if key is not None:
        query = query.where(_ACCOUNTS.c.key == key)
    if kind is not None:
        query = query.where(_ACCOUNTS.c.kind == kind)
    if after is not None:
        query = query.where(_ACCOUNTS.c.id > after)
    return [_account(row) for row in await session.execute(query)]


async def lock_accounts(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, AccountRow]:
    """Lock the accounts for update in ascending id order.

    Every writer takes its row locks in the same global order, so two transfers between the
    same accounts in opposite directions queue up instead of deadlocking.
    """
    ordered = sorted(set(ids))
    locked: dict[uuid.UUID, AccountRow] = {}
    for part in chunked(ordered):
        result = await session.execute(
            select(_ACCOUNTS).where(_ACCOUNTS.c.id.in_(part)).order_by(_ACCOUNTS.c.id).with_for_update()
        )
        locked.update({row.id: _account(row) for row in result})
    return locked


async def transfers_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TransferRow]:
    found: dict[uuid.UUID, TransferRow] = {}
    for part in chunked(ids):
        result = await session.execute(select(_TRANSFERS).where(_TRANSFERS.c.id.in_(part)))
        found.update({row.id: _transfer(row) for row in result})
    return found


async def insert_transfers(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert transfers, skipping ids that already exist; returns the ids actually inserted."""
    if not rows:
        return set()
    statement = pg_insert(Transfer).on_conflict_do_nothing(index_elements=["id"]).returning(Transfer.id)
    result = await session.execute(statement, list(rows))
    return set(result.scalars().all())


async def post_to_accounts(session: AsyncSession, deltas: dict[uuid.UUID, tuple[int, int]]) -> None:
    """Add (debits, credits) to each account's posted totals in one statement.

    The CHECK constraints on `accounts` are evaluated on the resulting rows, so an overdraft
    of a flagged account fails here even if the caller's own checks were wrong.
    """
    if not deltas:
        return
    ids = list(deltas)
    await session.execute(
        text(
            "UPDATE accounts AS a "
            "SET debits_posted = a.debits_posted + v.d, credits_posted = a.credits_posted + v.c "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:ds AS bigint[]), CAST(:cs AS bigint[])) AS v(id, d, c) "
            "WHERE a.id = v.id"
        ),
        {"ids": ids, "ds": [deltas[i][0] for i in ids], "cs": [deltas[i][1] for i in ids]},
    )


async def transfers_page(
    session: AsyncSession, *, account_id: uuid.UUID | None, after_seq: int, limit: int
) -> list[TransferRow]:
    query = select(_TRANSFERS).where(_TRANSFERS.c.seq > after_seq).order_by(_TRANSFERS.c.seq).limit(limit)
    if account_id is not None:
        query = query.where(
            or_(_TRANSFERS.c.debit_account_id == account_id, _TRANSFERS.c.credit_account_id == account_id)
        )
    return [_transfer(row) for row in await session.execute(query)]


async def account_keys(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    found: dict[uuid.UUID, str] = {}
    for part in chunked(sorted(set(ids))):
        result = await session.execute(select(_ACCOUNTS.c.id, _ACCOUNTS.c.key).where(_ACCOUNTS.c.id.in_(part)))
        found.update({row.id: row.key for row in result})
    return found


@dataclass(frozen=True)
class CurrencyTotals:
    currency: str
    debits_posted: int
    credits_posted: int
    transfers: int
    transferred: int


async def totals_by_currency(session: AsyncSession) -> list[CurrencyTotals]:
    """Per currency: the accounts' posted debits and credits, and the transfers' count and sum."""
    postings = (
        select(
            _ACCOUNTS.c.currency,
            func.coalesce(func.sum(_ACCOUNTS.c.debits_posted), 0).label("debits"),
            func.coalesce(func.sum(_ACCOUNTS.c.credits_posted), 0).label("credits"),
        )
        .group_by(_ACCOUNTS.c.currency)
        .subquery()
    )
    moved = (
        select(
            _TRANSFERS.c.currency,
            func.count().label("transfers"),
            func.coalesce(func.sum(_TRANSFERS.c.amount), 0).label("transferred"),
        )
        .group_by(_TRANSFERS.c.currency)
        .subquery()
    )
    query = (
        select(
            postings.c.currency,
            postings.c.debits,
            postings.c.credits,
            func.coalesce(moved.c.transfers, 0).label("transfers"),
            func.coalesce(moved.c.transferred, 0).label("transferred"),
        )
        .select_from(postings.outerjoin(moved, moved.c.currency == postings.c.currency))
        .order_by(postings.c.currency)
    )
    return [
        CurrencyTotals(
            currency=row.currency,
            debits_posted=int(row.debits),
            credits_posted=int(row.credits),
            transfers=int(row.transfers),
            transferred=int(row.transferred),
        )
        for row in await session.execute(query)
    ]


async def accounts_out_of_balance(session: AsyncSession) -> list[uuid.UUID]:
    """Accounts whose posted totals differ from the sum of their transfers (should be none)."""
    result = await session.execute(
        text(
            "SELECT a.id FROM accounts a "
            "LEFT JOIN (SELECT debit_account_id AS id, sum(amount) AS s FROM transfers GROUP BY 1) d ON d.id = a.id "
            "LEFT JOIN (SELECT credit_account_id AS id, sum(amount) AS s FROM transfers GROUP BY 1) c ON c.id = a.id "
            "WHERE a.debits_posted <> coalesce(d.s, 0) OR a.credits_posted <> coalesce(c.s, 0) "
            "ORDER BY a.id"
        )
    )
    return list(result.scalars().all())
