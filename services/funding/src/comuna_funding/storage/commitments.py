"""Queries of the remote commitments saga (`comuna_funding.commitments`): allocations still
waiting for their source, and the log of calls to sources. Data access only; what to do with
them is decided in `comuna_funding.domain.commitments`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.storage.models import Allocation, Funder, SourceCall
from comuna_funding.vocabulary import AllocationStatus, FunderKind


async def reserving_allocations(session: AsyncSession, limit: int) -> list[tuple[Allocation, Funder]]:
    """Allocations whose remote source has not answered for good yet, oldest first, with their funder."""
    result = await session.execute(
        select(Allocation, Funder)
        .join(Funder, Funder.name == Allocation.funding_source)
        .where(Allocation.status == AllocationStatus.RESERVING.value, Funder.kind == FunderKind.REMOTE.value)
        .order_by(Allocation.created_at, Allocation.id)
        .limit(limit)
    )
    return [(allocation, funder) for allocation, funder in result.all()]


async def lock_allocation(session: AsyncSession, allocation_id: uuid.UUID) -> Allocation | None:
    """The allocation, locked: one settlement at a time, whichever replica or round gets there first."""
    query = select(Allocation).where(Allocation.id == allocation_id).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def settle(
    session: AsyncSession,
    allocation_id: uuid.UUID,
    status: AllocationStatus,
    *,
    resolution_transfer_id: uuid.UUID,
    reason: str | None,
) -> None:
    await session.execute(
        update(Allocation)
        .where(Allocation.id == allocation_id)
        .values(status=status.value, resolution_transfer_id=resolution_transfer_id, reason=reason)
    )


async def insert_source_calls(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(SourceCall), list(rows))


async def source_calls_of(session: AsyncSession, allocation_id: uuid.UUID) -> list[SourceCall]:
    """Every call recorded for one allocation, in the order made."""
    result = await session.execute(
        select(SourceCall).where(SourceCall.allocation_id == allocation_id).order_by(SourceCall.at, SourceCall.id)
    )
    return list(result.scalars().all())
