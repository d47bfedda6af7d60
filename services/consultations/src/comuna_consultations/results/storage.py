"""Queries of the results slice: what certification counts, and the certified rows it stores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.storage.repository import ballots, candidates, results


@dataclass(frozen=True, slots=True)
class CandidateRow:
    id: uuid.UUID
    commune_id: uuid.UUID
    title: str
    assembly_priority: int


async def all_candidates(session: AsyncSession, consultation_id: uuid.UUID) -> list[CandidateRow]:
    query = select(candidates.c.id, candidates.c.commune_id, candidates.c.title, candidates.c.assembly_priority).where(
        candidates.c.consultation_id == consultation_id
    )
    return [CandidateRow(r.id, r.commune_id, r.title, r.assembly_priority) for r in await session.execute(query)]


async def votes_per_candidate(session: AsyncSession, consultation_id: uuid.UUID) -> dict[uuid.UUID, int]:
    query = (
        select(ballots.c.candidate_id, func.count())
        .where(ballots.c.consultation_id == consultation_id)
        .group_by(ballots.c.candidate_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(query)}


async def insert_results(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(results), rows)


@dataclass(frozen=True, slots=True)
class ResultRow:
    commune_id: uuid.UUID
    candidate_id: uuid.UUID
    title: str
    assembly_priority: int
    votes: int
    rank: int


async def stored_results(
    session: AsyncSession, consultation_id: uuid.UUID, *, commune_ids: Sequence[uuid.UUID] | None = None
) -> list[ResultRow]:
    """The certified rows of every commune, or only of `commune_ids`."""
    query = (
        select(
            results.c.commune_id,
            results.c.candidate_id,
            candidates.c.title,
            candidates.c.assembly_priority,
            results.c.votes,
            results.c.rank,
        )
        .join(candidates, candidates.c.id == results.c.candidate_id)
        .where(results.c.consultation_id == consultation_id)
        .order_by(results.c.commune_id, results.c.rank)
    )
    if commune_ids is not None:
        query = query.where(results.c.commune_id.in_(commune_ids))
    return [ResultRow(*row) for row in await session.execute(query)]


@dataclass(frozen=True, slots=True)
class CertifiedTotals:
    ballots: int
    communes_with_winner: int


async def certified_totals(session: AsyncSession, consultation_id: uuid.UUID) -> CertifiedTotals:
    """Ballots counted and communes with a winner, from the certified rows (a commune has a
    winner exactly when one of its candidates got a vote)."""
    query = select(
        func.coalesce(func.sum(results.c.votes), 0),
        func.count(func.distinct(results.c.commune_id)).filter(results.c.votes > 0),
    ).where(results.c.consultation_id == consultation_id)
    row = (await session.execute(query)).one()
    return CertifiedTotals(int(row[0]), int(row[1]))
