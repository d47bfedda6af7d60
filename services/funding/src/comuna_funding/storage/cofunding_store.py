"""SQL for co-funding: funders, rules, certified results, consultations whose plan was applied,
and the allocations they made. Plain data access; the rules are in `domain.cofunding`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.storage.models import Allocation, CertifiedResult, ConsultationFunding, Funder, FundingRule
from comuna_funding.vocabulary import LIVE_ALLOCATIONS, AllocationStatus


async def funder(session: AsyncSession, name: str) -> Funder | None:
    return (await session.execute(select(Funder).where(Funder.name == name))).scalar_one_or_none()


async def funders(session: AsyncSession, names: Sequence[str] | None = None) -> dict[str, Funder]:
    query = select(Funder).order_by(Funder.name)
    if names is not None:
        query = query.where(Funder.name.in_(list(names)))
    return {f.name: f for f in (await session.execute(query)).scalars()}


async def insert_funder_if_absent(session: AsyncSession, row: Funder) -> bool:
    values = {c.name: getattr(row, c.name) for c in Funder.__table__.columns if getattr(row, c.name) is not None}
    result = await session.execute(pg_insert(Funder).values(**values).on_conflict_do_nothing().returning(Funder.name))
    return result.scalar_one_or_none() is not None


async def replace_rules(session: AsyncSession, consultation_id: uuid.UUID, rows: Sequence[dict[str, Any]]) -> None:
    await session.execute(delete(FundingRule).where(FundingRule.consultation_id == consultation_id))
    if rows:
        await session.execute(
            pg_insert(FundingRule),
            [{"consultation_id": consultation_id, "position": i, **row} for i, row in enumerate(rows)],
        )


async def rules_of(session: AsyncSession, consultation_id: uuid.UUID) -> list[FundingRule]:
    query = select(FundingRule).where(FundingRule.consultation_id == consultation_id).order_by(FundingRule.position)
    return list((await session.execute(query)).scalars())


async def insert_result_if_absent(session: AsyncSession, row: dict[str, Any]) -> bool:
    result = await session.execute(
        pg_insert(CertifiedResult).values(**row).on_conflict_do_nothing().returning(CertifiedResult.version)
    )
    return result.scalar_one_or_none() is not None


async def latest_results(session: AsyncSession, consultation_id: uuid.UUID) -> list[CertifiedResult]:
    """The newest version of every commune's result, by commune code."""
    r = CertifiedResult
    newest = (
        select(r.commune_id, func.max(r.version).label("version"))
        .where(r.consultation_id == consultation_id)
        .group_by(r.commune_id)
        .subquery()
    )
    query = (
        select(r)
        .join(newest, (newest.c.commune_id == r.commune_id) & (newest.c.version == r.version))
        .where(r.consultation_id == consultation_id)
        .order_by(r.commune_code)
    )
    return list((await session.execute(query)).scalars())


async def commune_count(session: AsyncSession, consultation_id: uuid.UUID) -> int:
    query = select(func.count(func.distinct(CertifiedResult.commune_id))).where(
        CertifiedResult.consultation_id == consultation_id
    )
    return int((await session.execute(query)).scalar_one())


async def applied(session: AsyncSession, consultation_id: uuid.UUID) -> bool:
    query = select(ConsultationFunding.consultation_id).where(ConsultationFunding.consultation_id == consultation_id)
    return (await session.execute(query)).first() is not None


async def claim_application(session: AsyncSession, consultation_id: uuid.UUID, communes: int) -> bool:
    """Record that the plan is applied now; False if it already was (a replayed summary)."""
    result = await session.execute(
        pg_insert(ConsultationFunding)
        .values(consultation_id=consultation_id, communes=communes)
        .on_conflict_do_nothing()
        .returning(ConsultationFunding.consultation_id)
    )
    return result.scalar_one_or_none() is not None


async def live_allocations(session: AsyncSession, consultation_id: uuid.UUID) -> list[Allocation]:
    query = (
        select(Allocation)
        .where(
            Allocation.consultation_id == consultation_id,
            Allocation.status.in_([s.value for s in LIVE_ALLOCATIONS]),
        )
        .order_by(Allocation.commune_code, Allocation.rank, Allocation.funding_source)
        .with_for_update()
    )
    return list((await session.execute(query)).scalars())


async def next_generations(
    session: AsyncSession, consultation_id: uuid.UUID
) -> dict[tuple[uuid.UUID, uuid.UUID, str], int]:
    """(commune, candidate, funder) -> the generation a new allocation of it gets."""
    query = (
        select(
            Allocation.commune_id, Allocation.candidate_id, Allocation.funding_source, func.max(Allocation.generation)
        )
        .where(Allocation.consultation_id == consultation_id)
        .group_by(Allocation.commune_id, Allocation.candidate_id, Allocation.funding_source)
    )
    return {(c, k, f): int(g) + 1 for c, k, f, g in await session.execute(query)}


async def insert_allocations_if_absent(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    if not rows:
        return set()
    result = await session.execute(pg_insert(Allocation).on_conflict_do_nothing().returning(Allocation.id), list(rows))
    return set(result.scalars().all())


async def mark_reversed(session: AsyncSession, allocation_id: uuid.UUID, reversal_transfer_id: uuid.UUID) -> None:
    await session.execute(
        update(Allocation)
        .where(Allocation.id == allocation_id)
        .values(status=AllocationStatus.REVERSED.value, reversal_transfer_id=reversal_transfer_id)
    )
