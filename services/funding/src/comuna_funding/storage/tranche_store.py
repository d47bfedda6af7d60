"""Queries over the tranches reserved per milestone (`tranches`). No business rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.storage.ledger_store import chunked
from comuna_funding.storage.models import Disbursement, Tranche


async def tranches_by_milestones(session: AsyncSession, milestone_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Tranche]:
    found: dict[uuid.UUID, Tranche] = {}
    for part in chunked(milestone_ids):
        result = await session.execute(select(Tranche).where(Tranche.milestone_id.in_(part)))
        found.update({row.milestone_id: row for row in result.scalars()})
    return found


async def tranche_by_milestone(session: AsyncSession, milestone_id: uuid.UUID, *, lock: bool = False) -> Tranche | None:
    query = select(Tranche).where(Tranche.milestone_id == milestone_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def tranches_of_project(session: AsyncSession, project_id: uuid.UUID, *, lock: bool = False) -> list[Tranche]:
    query = select(Tranche).where(Tranche.project_id == project_id).order_by(Tranche.sequence, Tranche.milestone_id)
    if lock:
        query = query.with_for_update()
    return list((await session.execute(query)).scalars().all())


async def disbursed_milestones(session: AsyncSession, milestone_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The milestones that already have a disbursement (completed or rejected)."""
    found: set[uuid.UUID] = set()
    for part in chunked(milestone_ids):
        result = await session.execute(select(Disbursement.milestone_id).where(Disbursement.milestone_id.in_(part)))
        found.update(result.scalars().all())
    return found


async def add_tranches(session: AsyncSession, rows: Sequence[Tranche]) -> None:
    session.add_all(rows)
    await session.flush()
