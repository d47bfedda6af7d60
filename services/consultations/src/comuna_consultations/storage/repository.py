"""Queries over consultations' tables. No business rules here, only data access."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.storage.models import (
    Ballot,
    Candidate,
    Consultation,
    ConsultationCommune,
    Participation,
    Result,
)

# Core tables for the statements that need no ORM objects (inserts, counts, the ballot path).
consultations = cast(Table, Consultation.__table__)
communes = cast(Table, ConsultationCommune.__table__)
candidates = cast(Table, Candidate.__table__)
participations = cast(Table, Participation.__table__)
ballots = cast(Table, Ballot.__table__)
results = cast(Table, Result.__table__)


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


async def commune_codes(session: AsyncSession, consultation_id: uuid.UUID) -> dict[uuid.UUID, str]:
    query = select(communes.c.commune_id, communes.c.code).where(communes.c.consultation_id == consultation_id)
    return {row.commune_id: row.code for row in await session.execute(query)}


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


async def candidate_communes(session: AsyncSession, consultation_id: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
    """candidate id -> commune id, for the ballot path's in-memory check."""
    query = select(candidates.c.id, candidates.c.commune_id).where(candidates.c.consultation_id == consultation_id)
    return {row.id: row.commune_id for row in await session.execute(query)}


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


async def cast_ballot(
    session: AsyncSession | AsyncConnection,
    *,
    consultation_id: uuid.UUID,
    voter_ref: str,
    ballot_id: uuid.UUID,
    commune_id: uuid.UUID,
    candidate_id: uuid.UUID,
    channel: str,
) -> bool:
    """Insert the participation and the ballot in ONE statement; True if both were written.

    Nothing is written (False) when the voter already took part or the consultation is not in
    `voting` any more. The participation is inserted only if the consultation row, locked
    FOR KEY SHARE, still says `voting`: a `:close` holds FOR UPDATE on that row, which conflicts,
    so a ballot either commits before the close (and is counted) or sees `closed` (PostgreSQL
    re-checks the condition on the row version the close committed). The ballot is inserted
    from the participation's RETURNING, so it exists exactly when the participation is new.
    """
    written = await session.execute(
        _CAST_BALLOT,
        {
            "consultation_id": consultation_id,
            "voter_ref": voter_ref,
            "ballot_id": ballot_id,
            "commune_id": commune_id,
            "candidate_id": candidate_id,
            "channel": channel,
        },
    )
    return written.first() is not None


def _cast_ballot_statement() -> Any:
    """The ballot statement, built once: it runs for every ballot, and building a SQLAlchemy
    construct per call cost more CPU than executing it."""
    participation = (
        pg_insert(participations)
        .from_select(
            ["consultation_id", "voter_ref"],
            select(consultations.c.id, bindparam("voter_ref", type_=participations.c.voter_ref.type))
            .where(
                consultations.c.id == bindparam("consultation_id", type_=consultations.c.id.type),
                consultations.c.status == "voting",
            )
            .with_for_update(read=True, key_share=True),
        )
        .on_conflict_do_nothing(index_elements=["consultation_id", "voter_ref"])
        .returning(participations.c.consultation_id)
        .cte("participation")
    )
    return (
        insert(ballots)
        .from_select(
            ["id", "consultation_id", "commune_id", "candidate_id", "channel"],
            select(
                bindparam("ballot_id", type_=ballots.c.id.type),
                participation.c.consultation_id,
                bindparam("commune_id", type_=ballots.c.commune_id.type),
                bindparam("candidate_id", type_=ballots.c.candidate_id.type),
                bindparam("channel", type_=ballots.c.channel.type),
            ),
        )
        .returning(ballots.c.id)
    )


_CAST_BALLOT = _cast_ballot_statement()


async def has_participated(session: AsyncSession, consultation_id: uuid.UUID, voter_ref: str) -> bool:
    query = select(participations.c.voter_ref).where(
        participations.c.consultation_id == consultation_id, participations.c.voter_ref == voter_ref
    )
    return (await session.execute(query)).first() is not None


async def ballot_exists(session: AsyncSession, consultation_id: uuid.UUID, ballot_id: uuid.UUID) -> bool:
    query = select(ballots.c.id).where(ballots.c.id == ballot_id, ballots.c.consultation_id == consultation_id)
    return (await session.execute(query)).first() is not None


async def count_ballots(session: AsyncSession, consultation_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(ballots).where(ballots.c.consultation_id == consultation_id)
    return int((await session.execute(query)).scalar_one())


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
