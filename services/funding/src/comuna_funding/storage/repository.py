"""Queries over allocations and disbursements. No business rules here, only data access."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.storage.ledger_store import chunked
from comuna_funding.storage.models import Account, Allocation, Disbursement, ResultSupersession


async def insert_allocations_if_absent(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert allocations whose business key is new; returns the ids actually inserted."""
    inserted: set[uuid.UUID] = set()
    for part in chunked(rows, 1000):
        result = await session.execute(
            pg_insert(Allocation).on_conflict_do_nothing().returning(Allocation.id),
            list(part),
        )
        inserted.update(result.scalars().all())
    return inserted


async def allocation_by_id(session: AsyncSession, allocation_id: uuid.UUID, *, lock: bool = False) -> Allocation | None:
    query = select(Allocation).where(Allocation.id == allocation_id)
    if lock:
        # Serialises disbursements of one allocation (e.g. two copies of one milestone event).
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def list_allocations(
    session: AsyncSession,
    *,
    consultation_id: uuid.UUID | None,
    commune_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[tuple[Allocation, Account]]:
    query = (
        select(Allocation, Account)
        .join(Account, Account.id == Allocation.account_id)
        .order_by(Allocation.id)
        .limit(limit)
    )
    if consultation_id is not None:
        query = query.where(Allocation.consultation_id == consultation_id)
    if commune_id is not None:
        query = query.where(Allocation.commune_id == commune_id)
    if after is not None:
        query = query.where(Allocation.id > after)
    return [(row[0], row[1]) for row in await session.execute(query)]


async def disbursement_by_milestone(session: AsyncSession, milestone_id: uuid.UUID) -> Disbursement | None:
    return (
        await session.execute(select(Disbursement).where(Disbursement.milestone_id == milestone_id))
    ).scalar_one_or_none()


async def disbursements_of(session: AsyncSession, allocation_id: uuid.UUID) -> Sequence[Disbursement]:
    return (
        (
            await session.execute(
                select(Disbursement)
                .where(Disbursement.allocation_id == allocation_id)
                .order_by(Disbursement.created_at, Disbursement.id)
            )
        )
        .scalars()
        .all()
    )


async def existing_allocation_ids(session: AsyncSession, allocation_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for part in chunked(allocation_ids):
        result = await session.execute(select(Allocation.id).where(Allocation.id.in_(part)))
        found.update(result.scalars().all())
    return found


async def insert_supersession_if_absent(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(pg_insert(ResultSupersession).on_conflict_do_nothing(), [row])
