"""Queries over consultations' tables that several slices share. No business rules here, only
data access; each slice keeps its own queries in its `storage.py`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.storage.models import (
    Ballot,
    Candidate,
    Consultation,
    ConsultationCommune,
    Participation,
    Result,
    RollEntry,
    RollLoad,
)

# Core tables for the statements that need no ORM objects (inserts, counts, the ballot path).
consultations = cast(Table, Consultation.__table__)
communes = cast(Table, ConsultationCommune.__table__)
candidates = cast(Table, Candidate.__table__)
participations = cast(Table, Participation.__table__)
ballots = cast(Table, Ballot.__table__)
results = cast(Table, Result.__table__)
roll_loads = cast(Table, RollLoad.__table__)
roll_entries = cast(Table, RollEntry.__table__)


async def consultation_by_id(
    session: AsyncSession, consultation_id: uuid.UUID, *, lock: str | None = None
) -> Consultation | None:
    """`lock="update"` for status changes; `lock="share"` to keep the status fixed while writing
    under it (recording a candidate). The two conflict, so a transition waits for such writers
    and they wait for it."""
    query = select(Consultation).where(Consultation.id == consultation_id)
    if lock == "update":
        query = query.with_for_update()
    elif lock == "share":
        query = query.with_for_update(read=True)
    return (await session.execute(query)).scalar_one_or_none()


async def consultation_status(session: AsyncSession | AsyncConnection, consultation_id: uuid.UUID) -> str | None:
    query = select(consultations.c.status).where(consultations.c.id == consultation_id)
    return (await session.execute(query)).scalar_one_or_none()


async def commune(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> ConsultationCommune | None:
    return await session.get(ConsultationCommune, (consultation_id, commune_id))


async def communes_of(
    session: AsyncSession, consultation_id: uuid.UUID, *, after_code: str = "", limit: int | None = None
) -> Sequence[ConsultationCommune]:
    query = (
        select(ConsultationCommune)
        .where(ConsultationCommune.consultation_id == consultation_id, ConsultationCommune.code > after_code)
        .order_by(ConsultationCommune.code)
    )
    if limit is not None:
        query = query.limit(limit)
    return (await session.execute(query)).scalars().all()


async def count_ballots(session: AsyncSession, consultation_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(ballots).where(ballots.c.consultation_id == consultation_id)
    return int((await session.execute(query)).scalar_one())


async def roll_load(session: AsyncSession, consultation_id: uuid.UUID, *, lock: bool = False) -> RollLoad | None:
    query = select(RollLoad).where(RollLoad.consultation_id == consultation_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()
