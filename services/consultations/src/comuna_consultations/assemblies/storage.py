"""Queries of the assemblies slice: sessions, proposals, and a commune's prioritised list."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.storage.models import AssemblySession, Candidate, Prioritisation, Proposal
from comuna_consultations.storage.repository import candidates

sessions = cast(Table, AssemblySession.__table__)
proposals = cast(Table, Proposal.__table__)
prioritisations = cast(Table, Prioritisation.__table__)


async def insert_session(session: AsyncSession, row: dict[str, Any], proposal_rows: list[dict[str, Any]]) -> None:
    await session.execute(insert(sessions).values(**row))
    if proposal_rows:
        await session.execute(insert(proposals), proposal_rows)


async def sessions_of(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> Sequence[AssemblySession]:
    query = (
        select(AssemblySession)
        .where(AssemblySession.consultation_id == consultation_id, AssemblySession.commune_id == commune_id)
        .order_by(AssemblySession.held_at, AssemblySession.id)
    )
    return (await session.execute(query)).scalars().all()


async def proposals_of(session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID) -> Sequence[Proposal]:
    query = (
        select(Proposal)
        .where(Proposal.consultation_id == consultation_id, Proposal.commune_id == commune_id)
        .order_by(Proposal.title, Proposal.id)
    )
    return (await session.execute(query)).scalars().all()


async def proposals_by_id(
    session: AsyncSession, consultation_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Proposal]:
    query = select(Proposal).where(Proposal.consultation_id == consultation_id, Proposal.id.in_(ids))
    return {p.id: p for p in (await session.execute(query)).scalars().all()}


async def replace_candidates(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID, rows: list[dict[str, Any]]
) -> None:
    """The commune's candidate list becomes `rows` (registration is open: no ballot points at any)."""
    await session.execute(
        delete(candidates).where(candidates.c.consultation_id == consultation_id, candidates.c.commune_id == commune_id)
    )
    await session.execute(insert(candidates), rows)


async def upsert_prioritisation(session: AsyncSession, row: dict[str, Any]) -> None:
    statement = pg_insert(prioritisations).values(**row)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["consultation_id", "commune_id"],
            set_={
                "proposal_ids": statement.excluded.proposal_ids,
                "recorded_by": statement.excluded.recorded_by,
                "recorded_at": statement.excluded.recorded_at,
            },
        )
    )


async def prioritisation_of(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> Prioritisation | None:
    return await session.get(Prioritisation, (consultation_id, commune_id), populate_existing=True)


async def candidates_of(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> Sequence[Candidate]:
    query = (
        select(Candidate)
        .where(Candidate.consultation_id == consultation_id, Candidate.commune_id == commune_id)
        .order_by(Candidate.assembly_priority)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalars().all()
