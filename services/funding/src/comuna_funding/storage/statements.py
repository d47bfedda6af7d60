# ruff: noqa: S608  (the SQL is built from this module's constants; every value is a bound parameter)
"""SQL for the reconciliation of external statements: the ledger's transfers of one account in
a period (read page by page in ledger order), and the stored statements, lines and ledger items.

Plain data access; what matches what is decided in `comuna_funding.domain.reconciliation`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.storage.ledger_store import chunked
from comuna_funding.storage.models import Statement, StatementLine, StatementTransfer

# Rows per INSERT: 8 columns each, well under asyncpg's bind-parameter limit.
INSERT_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class LedgerMovement:
    """A transfer of the account as reconciliation sees it."""

    id: uuid.UUID
    seq: int
    debit_account_id: uuid.UUID
    amount: int
    # Its own reference or, for a post that gave none, the reference of the reservation it posts.
    reference: str
    created_at: datetime


# Two branches, each walking one of the account indexes ((debit|credit)_account_id, seq) from
# the page's key: PostgreSQL merges them in seq order, so a page costs its own rows, not the
# account's whole history. An account is never on both sides of a transfer.
_BRANCH = (
    "(SELECT t.id, t.seq, t.debit_account_id, t.amount, t.created_at, "
    "coalesce(nullif(t.reference, ''), p.reference, '') AS reference "
    "FROM transfers t LEFT JOIN transfers p ON p.id = t.pending_id "
    "WHERE t.{side}_account_id = :account AND t.seq > :after AND {where} ORDER BY t.seq LIMIT :limit)"
)


def _movements_query(where: str) -> str:
    branches = " UNION ALL ".join(_BRANCH.format(side=side, where=where) for side in ("debit", "credit"))
    return f"SELECT * FROM ({branches}) AS m ORDER BY seq LIMIT :limit"


_POSTED = _movements_query("t.kind IN ('single', 'post') AND t.created_at >= :start AND t.created_at < :end")
# Reservations opened before the period's end and not resolved (posted, voided, expired) by then.
_OPEN_PENDING = _movements_query(
    "t.kind = 'pending' AND t.created_at < :end "
    "AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = t.id AND r.created_at < :end)"
)


def _movement(row: Any) -> LedgerMovement:
    return LedgerMovement(
        id=row.id,
        seq=row.seq,
        debit_account_id=row.debit_account_id,
        amount=row.amount,
        reference=row.reference,
        created_at=row.created_at,
    )


async def posted_movements(
    session: AsyncSession, account_id: uuid.UUID, *, start: datetime, end: datetime, after_seq: int, limit: int
) -> list[LedgerMovement]:
    """Posted transfers (single, post) of the account with start <= created_at < end, after `after_seq`."""
    result = await session.execute(
        text(_POSTED), {"account": account_id, "start": start, "end": end, "after": after_seq, "limit": limit}
    )
    return [_movement(row) for row in result]


async def open_pending_movements(
    session: AsyncSession, account_id: uuid.UUID, *, end: datetime, after_seq: int, limit: int
) -> list[LedgerMovement]:
    """Pending transfers of the account still open at `end`, after `after_seq`."""
    result = await session.execute(
        text(_OPEN_PENDING), {"account": account_id, "end": end, "after": after_seq, "limit": limit}
    )
    return [_movement(row) for row in result]


async def statement_by_id(session: AsyncSession, statement_id: uuid.UUID) -> Statement | None:
    return (await session.execute(select(Statement).where(Statement.id == statement_id))).scalar_one_or_none()


async def statement_by_file(session: AsyncSession, account_id: uuid.UUID, sha256: str) -> Statement | None:
    query = select(Statement).where(Statement.account_id == account_id, Statement.sha256 == sha256)
    return (await session.execute(query)).scalar_one_or_none()


async def insert_statement_if_absent(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Insert the statement unless this account already has this file (a concurrent import of
    the same file waits for the first to commit, then finds it); whether it was inserted."""
    result = await session.execute(pg_insert(Statement).on_conflict_do_nothing().returning(Statement.id), [row])
    return result.first() is not None


async def insert_lines(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    for part in chunked(rows, INSERT_CHUNK):
        await session.execute(pg_insert(StatementLine), list(part))


async def insert_ledger_items(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    for part in chunked(rows, INSERT_CHUNK):
        await session.execute(pg_insert(StatementTransfer), list(part))


@dataclass(frozen=True, slots=True)
class Sums:
    count: int = 0
    debits_minor: int = 0
    credits_minor: int = 0


async def line_sums(session: AsyncSession, statement_id: uuid.UUID) -> dict[bool, Sums]:
    """Per matched (True) / unmatched (False): count and sums of the statement's lines."""
    result = await session.execute(
        text(
            "SELECT transfer_id IS NOT NULL AS matched, count(*) AS n, "
            "coalesce(sum(amount_minor) FILTER (WHERE direction = 'debit'), 0) AS debits, "
            "coalesce(sum(amount_minor) FILTER (WHERE direction = 'credit'), 0) AS credits "
            "FROM statement_lines WHERE statement_id = :statement GROUP BY 1"
        ),
        {"statement": statement_id},
    )
    return {bool(row.matched): Sums(int(row.n), int(row.debits), int(row.credits)) for row in result}


async def ledger_item_sums(session: AsyncSession, statement_id: uuid.UUID) -> dict[str, Sums]:
    """Per status (unmatched, pending): count and sums of the ledger items."""
    result = await session.execute(
        text(
            "SELECT status, count(*) AS n, "
            "coalesce(sum(amount_minor) FILTER (WHERE direction = 'debit'), 0) AS debits, "
            "coalesce(sum(amount_minor) FILTER (WHERE direction = 'credit'), 0) AS credits "
            "FROM statement_transfers WHERE statement_id = :statement GROUP BY 1"
        ),
        {"statement": statement_id},
    )
    return {str(row.status): Sums(int(row.n), int(row.debits), int(row.credits)) for row in result}


@dataclass(frozen=True, slots=True)
class LineRow:
    line: int
    booked_on: date
    reference: str
    amount_minor: int
    direction: str
    transfer_id: uuid.UUID | None
    pending_transfer_id: uuid.UUID | None
    # The matched transfer's ledger position and time (None when unmatched).
    seq: int | None
    at: datetime | None


async def lines_page(
    session: AsyncSession, statement_id: uuid.UUID, *, matched: bool, after_line: int, limit: int
) -> list[LineRow]:
    result = await session.execute(
        text(
            "SELECT l.line, l.booked_on, l.reference, l.amount_minor, l.direction, l.transfer_id, "
            "l.pending_transfer_id, t.seq, t.created_at AS at "
            "FROM statement_lines l LEFT JOIN transfers t ON t.id = l.transfer_id "
            "WHERE l.statement_id = :statement AND (l.transfer_id IS NOT NULL) = :matched AND l.line > :after "
            "ORDER BY l.line LIMIT :limit"
        ),
        {"statement": statement_id, "matched": matched, "after": after_line, "limit": limit},
    )
    return [
        LineRow(
            line=row.line,
            booked_on=row.booked_on,
            reference=row.reference,
            amount_minor=row.amount_minor,
            direction=row.direction,
            transfer_id=row.transfer_id,
            pending_transfer_id=row.pending_transfer_id,
            seq=row.seq,
            at=row.at,
        )
        for row in result
    ]


async def ledger_items_page(
    session: AsyncSession, statement_id: uuid.UUID, *, status: str, after_seq: int, limit: int
) -> Sequence[StatementTransfer]:
    query = (
        select(StatementTransfer)
        .where(
            StatementTransfer.statement_id == statement_id,
            StatementTransfer.status == status,
            StatementTransfer.seq > after_seq,
        )
        .order_by(StatementTransfer.seq)
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()
