"""Queries of the lifecycle slice: consultations, their commune snapshot and the candidates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.storage.models import Candidate, Consultation, ScheduleAmendment
from comuna_consultations.storage.repository import candidates, communes, consultations


async def code_taken(session: AsyncSession, code: str) -> bool:
    query = select(consultations.c.id).where(consultations.c.code == code)
    return (await session.execute(query)).first() is not None


async def list_consultations(session: AsyncSession, *, after_code: str, limit: int) -> Sequence[Consultation]:
    """Newest first: codes are `YYYY-Qn`, so descending code order is descending time."""
    query = select(Consultation).order_by(Consultation.code.desc()).limit(limit)
    if after_code:
        query = query.where(Consultation.code < after_code)
    return (await session.execute(query)).scalars().all()


async def insert_consultation(session: AsyncSession, row: dict[str, Any]) -> bool:
    """False if the code is taken (the unique constraint decides, also under concurrency)."""
    inserted = await session.execute(
        pg_insert(consultations)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(consultations.c.id)
    )
    return inserted.first() is not None


async def insert_communes(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(communes), rows)


async def insert_candidate(session: AsyncSession, row: dict[str, Any]) -> bool:
    """False if the commune already has a candidate at that priority."""
    inserted = await session.execute(
        pg_insert(candidates)
        .values(**row)
        .on_conflict_do_nothing(constraint="uq_candidates_priority")
        .returning(candidates.c.id)
    )
    return inserted.first() is not None


async def candidates_of_commune(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> Sequence[Candidate]:
    query = (
        select(Candidate)
        .where(Candidate.consultation_id == consultation_id, Candidate.commune_id == commune_id)
        .order_by(Candidate.assembly_priority)
    )
    return (await session.execute(query)).scalars().all()


amendments = cast(Table, ScheduleAmendment.__table__)


async def candidate_count(session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID) -> int:
    query = (
        select(func.count())
        .select_from(candidates)
        .where(candidates.c.consultation_id == consultation_id, candidates.c.commune_id == commune_id)
    )
    return int((await session.execute(query)).scalar_one())


async def insert_amendment(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(amendments).values(**row))


async def amendments_of(session: AsyncSession, consultation_id: uuid.UUID) -> Sequence[ScheduleAmendment]:
    query = (
        select(ScheduleAmendment)
        .where(ScheduleAmendment.consultation_id == consultation_id)
        .order_by(ScheduleAmendment.amended_at, ScheduleAmendment.id)
    )
    return (await session.execute(query)).scalars().all()
