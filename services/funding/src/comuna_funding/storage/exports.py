# ruff: noqa: S608  (the SQL is built from this module's constants; every value is a bound parameter)
"""SQL for the open fund-flow exports: the transfers of the commitment accounts of the
allocations in scope (by funder, commune, project), page by page in ledger order, and their
committed / disbursed / pending / returned totals.

Plain data access; what the totals mean is decided in `comuna_funding.domain.exports`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.vocabulary import AccountKind, TransferKind


@dataclass(frozen=True, slots=True)
class ScopeFilter:
    """Which allocations: None means any."""

    funder: str | None = None
    commune_id: uuid.UUID | None = None
    allocation_id: uuid.UUID | None = None


def _where(alias: str, scope: ScopeFilter) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = ["TRUE"]
    params: dict[str, Any] = {}
    if scope.funder is not None:
        clauses.append(f"{alias}.funding_source = :funder")
        params["funder"] = scope.funder
    if scope.commune_id is not None:
        clauses.append(f"{alias}.commune_id = :commune_id")
        params["commune_id"] = scope.commune_id
    if scope.allocation_id is not None:
        clauses.append(f"{alias}.id = :allocation_id")
        params["allocation_id"] = scope.allocation_id
    return " AND ".join(clauses), params


def _kinds(*members: AccountKind | TransferKind) -> str:
    return "(" + ", ".join(f"'{member.value}'" for member in members) + ")"


_POSTED = _kinds(TransferKind.SINGLE, TransferKind.POST)
_PENDING = f"'{TransferKind.PENDING.value}'"
_FUNDERS_SIDE = _kinds(AccountKind.SOURCE, AccountKind.CLEARING)
_SPENDING_SIDE = _kinds(AccountKind.COMMUNE, AccountKind.PROJECT)


async def begin_snapshot(session: AsyncSession) -> None:
    """Make the session's transaction one read-only snapshot (its first statement): the totals
    and every page of rows then describe the same ledger, whatever commits meanwhile."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


@dataclass(frozen=True, slots=True)
class TotalsRow:
    currency: str
    committed: int
    disbursed: int
    pending: int
    returned: int


def _sum(name: str, condition: str) -> str:
    return f"coalesce(sum(amount) FILTER (WHERE {condition}), 0) AS {name}"


_sums = ", ".join(
    (
        _sum("committed", f"kind IN {_POSTED} AND enters_scope AND debit_kind IN {_FUNDERS_SIDE}"),
        _sum("disbursed", f"kind IN {_POSTED} AND leaves_scope AND credit_kind IN {_SPENDING_SIDE}"),
        _sum("pending", f"still_open AND leaves_scope AND credit_kind IN {_SPENDING_SIDE}"),
        _sum("returned", f"kind IN {_POSTED} AND leaves_scope AND credit_kind IN {_FUNDERS_SIDE}"),
    )
)


async def totals(session: AsyncSession, scope: ScopeFilter) -> list[TotalsRow]:
    where, params = _where("a", scope)
    result = await session.execute(
        text(
            f"WITH scope AS (SELECT a.account_id FROM allocations a WHERE {where}), "
            "moves AS (SELECT t.currency, t.kind, t.amount, d.kind AS debit_kind, c.kind AS credit_kind, "
            "t.debit_account_id IN (SELECT account_id FROM scope) AS leaves_scope, "
            "t.credit_account_id IN (SELECT account_id FROM scope) AS enters_scope, "
            f"t.kind = {_PENDING} AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = t.id) AS still_open "
            "FROM transfers t JOIN accounts d ON d.id = t.debit_account_id "
            "JOIN accounts c ON c.id = t.credit_account_id "
            "WHERE t.debit_account_id IN (SELECT account_id FROM scope) "
            "OR t.credit_account_id IN (SELECT account_id FROM scope)) "
            f"SELECT currency, {_sums} "
            "FROM moves GROUP BY currency ORDER BY currency"
        ),
        params,
    )
    return [
        TotalsRow(row.currency, int(row.committed), int(row.disbursed), int(row.pending), int(row.returned))
        for row in result
    ]


@dataclass(frozen=True, slots=True)
class ExportRow:
    id: uuid.UUID
    seq: int
    created_at: datetime
    amount: int
    currency: str
    kind: str
    code: str
    reference: str
    pending_id: uuid.UUID | None
    debit_account_id: uuid.UUID
    debit_key: str
    credit_account_id: uuid.UUID
    credit_key: str
    # The allocation in scope whose commitment account the transfer touches (the payer's if both).
    allocation_id: uuid.UUID
    funder: str
    commune_id: uuid.UUID


async def rows_page(session: AsyncSession, scope: ScopeFilter, *, after_seq: int, limit: int) -> list[ExportRow]:
    """The next `limit` transfers in scope after `after_seq`, in ledger order (the transfers'
    seq index drives the walk, so the whole export reads the ledger once)."""
    debit_where, params = _where("ad", scope)
    credit_where, _ = _where("ac", scope)
    result = await session.execute(
        text(
            "SELECT t.id, t.seq, t.created_at, t.amount, t.currency, t.kind, t.code, t.reference, t.pending_id, "
            "t.debit_account_id, d.key AS debit_key, t.credit_account_id, c.key AS credit_key, "
            "coalesce(ad.id, ac.id) AS allocation_id, coalesce(ad.funding_source, ac.funding_source) AS funder, "
            "coalesce(ad.commune_id, ac.commune_id) AS commune_id "
            "FROM transfers t "
            f"LEFT JOIN allocations ad ON ad.account_id = t.debit_account_id AND {debit_where} "
            f"LEFT JOIN allocations ac ON ac.account_id = t.credit_account_id AND {credit_where} "
            "JOIN accounts d ON d.id = t.debit_account_id JOIN accounts c ON c.id = t.credit_account_id "
            "WHERE t.seq > :after AND (ad.id IS NOT NULL OR ac.id IS NOT NULL) "
            "ORDER BY t.seq LIMIT :limit"
        ),
        {**params, "after": after_seq, "limit": limit},
    )
    return [
        ExportRow(
            id=row.id,
            seq=row.seq,
            created_at=row.created_at,
            amount=row.amount,
            currency=row.currency,
            kind=row.kind,
            code=row.code,
            reference=row.reference,
            pending_id=row.pending_id,
            debit_account_id=row.debit_account_id,
            debit_key=row.debit_key,
            credit_account_id=row.credit_account_id,
            credit_key=row.credit_key,
            allocation_id=row.allocation_id,
            funder=row.funder,
            commune_id=row.commune_id,
        )
        for row in result
    ]
