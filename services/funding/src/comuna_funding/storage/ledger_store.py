"""SQL for the ledger: account rows, transfer rows and the aggregate queries over them.

Plain data access; which transfers are allowed is decided in `comuna_funding.domain.ledger`.
Statements take whole batches (one round trip for thousands of rows) because one certified
consultation allocates to every commune of the country at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.storage.models import Account, Transfer
from comuna_funding.vocabulary import RETURN_CODES

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
    debits_pending: int = 0
    credits_pending: int = 0
    closed: bool = False


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
    kind: str = "single"
    pending_id: uuid.UUID | None = None
    timeout_seconds: int | None = None
    exchange_base_id: uuid.UUID | None = None
    exchange_counter_id: uuid.UUID | None = None
    exchange_rate: Decimal | None = None


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
        debits_pending=row.debits_pending,
        credits_pending=row.credits_pending,
        closed=row.closed,
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
        kind=row.kind,
        pending_id=row.pending_id,
        timeout_seconds=row.timeout_seconds,
        exchange_base_id=row.exchange_base_id,
        exchange_counter_id=row.exchange_counter_id,
        exchange_rate=row.exchange_rate,
    )


_ACCOUNTS = Account.__table__
_TRANSFERS = Transfer.__table__
# The columns in the order of the row classes' fields: hot paths build rows positionally
# (`AccountRow(*row)`), a batch reads thousands of them.
_ACCOUNT_COLUMNS = [_ACCOUNTS.c[f.name] for f in fields(AccountRow)]
_TRANSFER_COLUMNS = [_TRANSFERS.c[f.name] for f in fields(TransferRow)]


async def insert_accounts_if_absent(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[AccountRow]:
    """Insert accounts whose key is new (existing keys are left untouched); the inserted ones."""
    if not rows:
        return []
    statement = pg_insert(Account).on_conflict_do_nothing().returning(*_ACCOUNTS.c)
    return [_account(row) for row in await session.execute(statement, list(rows))]


async def close_account(session: AsyncSession, account_id: uuid.UUID) -> None:
    await session.execute(update(Account).where(Account.id == account_id).values(closed=True))


async def transaction_time(session: AsyncSession) -> datetime:
    """The transaction's `now()`: what every row this transaction inserts gets as created_at."""
    now: datetime = (await session.execute(select(func.now()))).scalar_one()
    return now


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
            select(*_ACCOUNT_COLUMNS).where(_ACCOUNTS.c.id.in_(part)).order_by(_ACCOUNTS.c.id).with_for_update()
        )
        locked.update({row[0]: AccountRow(*row) for row in result})
    return locked


async def transfers_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TransferRow]:
    found: dict[uuid.UUID, TransferRow] = {}
    for part in chunked(ids):
        result = await session.execute(select(*_TRANSFER_COLUMNS).where(_TRANSFERS.c.id.in_(part)))
        found.update({row[0]: TransferRow(*row) for row in result})
    return found


async def insert_transfers(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> dict[uuid.UUID, TransferRow]:
    """Insert transfers, skipping ids that already exist; returns the rows actually inserted.

    A resolution whose pending transfer another writer resolved meanwhile is skipped the same
    way (the unique key on `pending_id`), and the caller decides again.
    """
    if not rows:
        return {}
    statement = pg_insert(Transfer).on_conflict_do_nothing().returning(*_TRANSFER_COLUMNS)
    return {row[0]: TransferRow(*row) for row in await session.execute(statement, list(rows))}


# (debits_posted, credits_posted, debits_pending, credits_pending) to add; pending ones may be negative.
Deltas = tuple[int, int, int, int]


async def post_to_accounts(session: AsyncSession, deltas: dict[uuid.UUID, Deltas]) -> None:
    """Add the deltas to each account's totals in one statement.

    The CHECK constraints on `accounts` are evaluated on the resulting rows, so an overdraft
    of a flagged account fails here even if the caller's own checks were wrong, and the
    statement trigger refuses it unless debits and credits moved alike in every currency.
    """
    if not deltas:
        return
    ids = list(deltas)
    await session.execute(
        text(
            "UPDATE accounts AS a "
            "SET debits_posted = a.debits_posted + v.dp, credits_posted = a.credits_posted + v.cp, "
            "debits_pending = a.debits_pending + v.dq, credits_pending = a.credits_pending + v.cq "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:dp AS bigint[]), CAST(:cp AS bigint[]), "
            "CAST(:dq AS bigint[]), CAST(:cq AS bigint[])) AS v(id, dp, cp, dq, cq) "
            "WHERE a.id = v.id"
        ),
        {
            "ids": ids,
            "dp": [deltas[i][0] for i in ids],
            "cp": [deltas[i][1] for i in ids],
            "dq": [deltas[i][2] for i in ids],
            "cq": [deltas[i][3] for i in ids],
        },
    )


async def resolutions_of(session: AsyncSession, pending_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TransferRow]:
    """The transfer that resolved each of these pending transfers, for those resolved."""
    found: dict[uuid.UUID, TransferRow] = {}
    for part in chunked(sorted(set(pending_ids))):
        result = await session.execute(select(_TRANSFERS).where(_TRANSFERS.c.pending_id.in_(part)))
        found.update({row.pending_id: _transfer(row) for row in result})
    return found


async def due_pending_transfers(session: AsyncSession, limit: int) -> list[TransferRow]:
    """Unresolved pending transfers whose timeout has passed, oldest first."""
    result = await session.execute(
        text(
            "SELECT p.* FROM transfers p "
            "WHERE p.kind = 'pending' AND p.timeout_seconds IS NOT NULL "
            "AND p.created_at + make_interval(secs => p.timeout_seconds) <= now() "
            "AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = p.id) "
            "ORDER BY p.created_at, p.id LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [_transfer(row) for row in result]


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
    debits_pending: int
    credits_pending: int
    transfers: int
    # What the transfers say the totals must be: posted (single and post) and still pending.
    transferred: int
    reserved: int


async def totals_by_currency(session: AsyncSession) -> list[CurrencyTotals]:
    """Per currency: the accounts' totals, and the transfers' count, posted sum and open reservations."""
    result = await session.execute(
        text(
            "WITH postings AS (SELECT currency, sum(debits_posted) AS dp, sum(credits_posted) AS cp, "
            "sum(debits_pending) AS dq, sum(credits_pending) AS cq FROM accounts GROUP BY currency), "
            "moved AS (SELECT t.currency, count(*) AS n, "
            "coalesce(sum(t.amount) FILTER (WHERE t.kind IN ('single', 'post')), 0) AS posted, "
            "coalesce(sum(CASE WHEN t.kind = 'pending' THEN t.amount "
            "WHEN t.pending_id IS NOT NULL THEN -p.amount ELSE 0 END), 0) AS reserved "
            "FROM transfers t LEFT JOIN transfers p ON p.id = t.pending_id GROUP BY t.currency) "
            "SELECT a.currency, a.dp, a.cp, a.dq, a.cq, coalesce(m.n, 0) AS n, coalesce(m.posted, 0) AS posted, "
            "coalesce(m.reserved, 0) AS reserved FROM postings a LEFT JOIN moved m ON m.currency = a.currency "
            "ORDER BY a.currency"
        )
    )
    return [
        CurrencyTotals(
            currency=row.currency,
            debits_posted=int(row.dp),
            credits_posted=int(row.cp),
            debits_pending=int(row.dq),
            credits_pending=int(row.cq),
            transfers=int(row.n),
            transferred=int(row.posted),
            reserved=int(row.reserved),
        )
        for row in result
    ]


async def accounts_out_of_balance(session: AsyncSession) -> list[uuid.UUID]:
    """Accounts whose totals differ from what their transfers add up to (should be none)."""
    result = await session.execute(
        text(
            "WITH effects AS (SELECT t.debit_account_id, t.credit_account_id, "
            "CASE WHEN t.kind IN ('single', 'post') THEN t.amount ELSE 0 END AS posted, "
            "CASE WHEN t.kind = 'pending' THEN t.amount WHEN t.pending_id IS NOT NULL THEN -p.amount "
            "ELSE 0 END AS pending "
            "FROM transfers t LEFT JOIN transfers p ON p.id = t.pending_id), "
            "d AS (SELECT debit_account_id AS id, sum(posted) AS posted, sum(pending) AS pending "
            "FROM effects GROUP BY 1), "
            "c AS (SELECT credit_account_id AS id, sum(posted) AS posted, sum(pending) AS pending "
            "FROM effects GROUP BY 1) "
            "SELECT a.id FROM accounts a LEFT JOIN d ON d.id = a.id LEFT JOIN c ON c.id = a.id "
            "WHERE a.debits_posted <> coalesce(d.posted, 0) OR a.credits_posted <> coalesce(c.posted, 0) "
            "OR a.debits_pending <> coalesce(d.pending, 0) OR a.credits_pending <> coalesce(c.pending, 0) "
            "ORDER BY a.id"
        )
    )
    return list(result.scalars().all())


async def all_balances(session: AsyncSession) -> list[AccountRow]:
    """Every account, by id (the published balances; one statement, so one snapshot)."""
    return [_account(row) for row in await session.execute(select(_ACCOUNTS).order_by(_ACCOUNTS.c.id))]


async def balances_snapshot(session: AsyncSession, origin: str) -> tuple[int, list[AccountRow]]:
    """(journal size, every account by id), read by one statement: one snapshot, so the
    balances are exactly those the first `size` journal entries add up to."""
    result = await session.execute(
        text(
            "SELECT coalesce((SELECT size FROM tlog_logs WHERE origin = :origin), 0) AS journal_size, a.* "
            "FROM accounts a ORDER BY a.id"
        ),
        {"origin": origin},
    )
    rows = result.all()
    if not rows:
        size = await session.execute(
            text("SELECT coalesce((SELECT size FROM tlog_logs WHERE origin = :origin), 0)"), {"origin": origin}
        )
        return int(size.scalar_one()), []
    return int(rows[0].journal_size), [_account(row) for row in rows]


async def returned_from(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Per account, what its transfers with a return code (`RETURN_CODES`) moved out of it."""
    found: dict[uuid.UUID, int] = {}
    codes = sorted(RETURN_CODES)
    for part in chunked(sorted(set(account_ids))):
        result = await session.execute(
            select(_TRANSFERS.c.debit_account_id, func.sum(_TRANSFERS.c.amount))
            .where(_TRANSFERS.c.debit_account_id.in_(part), _TRANSFERS.c.code.in_(codes))
            .group_by(_TRANSFERS.c.debit_account_id)
        )
        found.update({account_id: int(total) for account_id, total in result})
    return found
