"""Queries of the lifecycle slice: consultations, their commune snapshot and the candidates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.storage.models import Candidate, Consultation
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
