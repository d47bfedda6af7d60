"""Queries of the results slice: what a certification counts (one grouped statement per source,
for one commune or all), and the certified versions it stores."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import ColumnElement, Table, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.results.counting import BallotGroup, CandidateInfo, ParticipationGroup
from comuna_consultations.storage.models import (
    CommuneCertification,
    ConflictDecision,
    OfflineSync,
    ParticipationConflict,
    VotingTable,
)
from comuna_consultations.storage.repository import ballots, candidates, participations, results, roll_entries

certifications = cast(Table, CommuneCertification.__table__)
decisions = cast(Table, ConflictDecision.__table__)
conflicts = cast(Table, ParticipationConflict.__table__)
offline_syncs = cast(Table, OfflineSync.__table__)
voting_tables = cast(Table, VotingTable.__table__)


def _in(column: Any, commune_ids: Sequence[uuid.UUID] | None) -> ColumnElement[bool]:
    return column.in_(commune_ids) if commune_ids is not None else literal(True)


def _cost_column() -> Any:
    return candidates.c.estimated_cost


async def candidates_of(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> list[CandidateInfo]:
    query = select(
        candidates.c.id,
        candidates.c.commune_id,
        candidates.c.title,
        candidates.c.assembly_priority,
        _cost_column(),
        candidates.c.created_at,
    ).where(candidates.c.consultation_id == consultation_id, _in(candidates.c.commune_id, commune_ids))
    return [CandidateInfo(*row) for row in await session.execute(query)]


async def ballot_groups(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> list[BallotGroup]:
    b = ballots.c
    query = (
        select(b.commune_id, b.channel, b.table_id, b.candidate_id, func.count())
        .where(b.consultation_id == consultation_id, _in(b.commune_id, commune_ids))
        .group_by(b.commune_id, b.channel, b.table_id, b.candidate_id)
    )
    return [BallotGroup(r[0], r[1], r[2], r[3], int(r[4])) for r in await session.execute(query)]


async def participation_groups(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> list[ParticipationGroup]:
    p = participations.c
    query = (
        select(p.commune_id, p.channel, p.table_id, func.count())
        .where(p.consultation_id == consultation_id, _in(p.commune_id, commune_ids))
        .group_by(p.commune_id, p.channel, p.table_id)
    )
    return [ParticipationGroup(r[0], r[1], r[2], int(r[3])) for r in await session.execute(query)]


async def offline_null_votes(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """(commune, table, null votes) of the offline tables' synced batches: a device counts a
    null vote without a ballot row (ballot rows are never null)."""
    s = offline_syncs.c
    query = (
        select(s.commune_id, s.table_id, func.sum(s.null_votes))
        .where(s.consultation_id == consultation_id, _in(s.commune_id, commune_ids), s.null_votes > 0)
        .group_by(s.commune_id, s.table_id)
    )
    return [(r[0], r[1], int(r[2])) for r in await session.execute(query)]


async def table_codes(conn: AsyncConnection, consultation_id: uuid.UUID) -> dict[uuid.UUID, str]:
    """The code of each of the consultation's tables, by id (bulletins name tables by code)."""
    t = voting_tables.c
    rows = await conn.execute(select(t.id, t.code).where(t.consultation_id == consultation_id))
    return {row[0]: str(row[1]) for row in rows}


async def roll_sizes(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, int]:
    r = roll_entries.c
    query = (
        select(r.commune_id, func.count())
        .where(r.consultation_id == consultation_id, _in(r.commune_id, commune_ids))
        .group_by(r.commune_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(query)}


async def conflict_counts(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, tuple[int, int]]:
    """Per commune: (conflicts, those whose second ballot is in the count: `ballot_counted`)."""
    c = conflicts.c
    query = (
        select(c.commune_id, func.count(), func.count().filter(c.ballot_counted))
        .where(c.consultation_id == consultation_id, _in(c.commune_id, commune_ids))
        .group_by(c.commune_id)
    )
    return {row[0]: (int(row[1]), int(row[2])) for row in await session.execute(query)}


# --- auditors' decisions ---------------------------------------------------------------------


async def decided_conflicts(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, int]:
    """Per commune, the most conflicts any recorded decision covered."""
    d = decisions.c
    query = (
        select(d.commune_id, func.max(d.conflicts))
        .where(d.consultation_id == consultation_id, _in(d.commune_id, commune_ids))
        .group_by(d.commune_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(query)}


async def insert_decision(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(decisions), [row])


# --- certified versions ----------------------------------------------------------------------


async def latest_versions(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, int]:
    c = certifications.c
    query = (
        select(c.commune_id, func.max(c.version))
        .where(c.consultation_id == consultation_id, _in(c.commune_id, commune_ids))
        .group_by(c.commune_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(query)}


CERTIFICATION_COLUMNS = (
    "consultation_id",
    "commune_id",
    "version",
    "supersedes",
    "reason",
    "certified_by",
    "certified_at",
    "ballots",
    "blank",
    "null_votes",
    "participations",
    "roll_size",
    "conflicts",
    "counted_conflicts",
    "winner_candidate_id",
    "tie_break",
    "subtotals",
)
RESULT_COLUMNS = ("consultation_id", "commune_id", "candidate_id", "version", "votes", "rank")


async def insert_certifications(
    session: AsyncSession, certification_rows: list[dict[str, Any]], result_rows: list[dict[str, Any]]
) -> None:
    """COPY the rows on the session's connection, in its transaction (a national certification
    writes ~5,000 certifications and ~27,000 ranked rows: an INSERT of each was a third of it)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = cast(asyncpg.Connection, raw.driver_connection)
    if certification_rows:
        await driver.copy_records_to_table(
            "commune_certifications",
            records=[
                tuple(json.dumps(r[c]) if c in ("tie_break", "subtotals") else r[c] for c in CERTIFICATION_COLUMNS)
                for r in certification_rows
            ],
            columns=list(CERTIFICATION_COLUMNS),
        )
    if result_rows:
        await driver.copy_records_to_table(
            "results",
            records=[tuple(r[c] for c in RESULT_COLUMNS) for r in result_rows],
            columns=list(RESULT_COLUMNS),
        )


@dataclass(frozen=True, slots=True)
class StoredCertification:
    row: CommuneCertification
    # (candidate id, title, assembly priority, votes, rank, estimated cost), in rank order.
    ranked: list[tuple[uuid.UUID, str, int, int, int, int | None]]


async def stored_certifications(
    session: AsyncSession,
    consultation_id: uuid.UUID,
    *,
    commune_ids: Sequence[uuid.UUID] | None = None,
    latest_only: bool = True,
) -> list[StoredCertification]:
    """Certified versions (the latest of each commune, or all of them) with their ranked rows."""
    query = select(CommuneCertification).where(
        CommuneCertification.consultation_id == consultation_id, _in(CommuneCertification.commune_id, commune_ids)
    )
    if latest_only:
        later = certifications.alias("later")
        # No later version of the same commune.
        query = query.where(
            ~select(later.c.version)
            .where(
                later.c.consultation_id == CommuneCertification.consultation_id,
                later.c.commune_id == CommuneCertification.commune_id,
                later.c.version > CommuneCertification.version,
            )
            .exists()
        )
    rows = (await session.execute(query.order_by(CommuneCertification.version))).scalars().all()
    if not rows:
        return []
    wanted = {r.commune_id for r in rows}
    ranked_query = (
        select(
            results.c.commune_id,
            results.c.version,
            results.c.candidate_id,
            candidates.c.title,
            candidates.c.assembly_priority,
            results.c.votes,
            results.c.rank,
            candidates.c.estimated_cost,
        )
        .join(candidates, candidates.c.id == results.c.candidate_id)
        .where(results.c.consultation_id == consultation_id, _in(results.c.commune_id, list(wanted)))
        .order_by(results.c.rank)
    )
    by_version: dict[tuple[uuid.UUID, int], list[tuple[uuid.UUID, str, int, int, int, int | None]]] = {}
    for r in await session.execute(ranked_query):
        by_version.setdefault((r[0], r[1]), []).append((r[2], r[3], r[4], int(r[5]), r[6], r[7]))
    return [StoredCertification(r, by_version.get((r.commune_id, r.version), [])) for r in rows]


async def uncertified_count(session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID]) -> int:
    """How many of `commune_ids` have no certification yet."""
    if not commune_ids:
        return 0
    query = select(func.count(func.distinct(certifications.c.commune_id))).where(
        certifications.c.consultation_id == consultation_id, certifications.c.commune_id.in_(commune_ids)
    )
    return len(set(commune_ids)) - int((await session.execute(query)).scalar_one())


@dataclass(frozen=True, slots=True)
class CertifiedTotals:
    ballots: int
    communes_certified: int
    communes_with_winner: int
    last_certified_at: datetime | None


async def certified_totals(session: AsyncSession, consultation_id: uuid.UUID) -> CertifiedTotals:
    """Over the latest version of each certified commune."""
    c = certifications.c
    newest = (
        select(c.commune_id, func.max(c.version).label("version"))
        .where(c.consultation_id == consultation_id)
        .group_by(c.commune_id)
        .subquery()
    )
    query = select(
        func.coalesce(func.sum(c.ballots), 0),
        func.count(),
        func.count(c.winner_candidate_id),
        func.max(c.certified_at),
    ).join(newest, (newest.c.commune_id == c.commune_id) & (newest.c.version == c.version))
    query = query.where(c.consultation_id == consultation_id)
    row = (await session.execute(query)).one()
    return CertifiedTotals(int(row[0]), int(row[1]), int(row[2]), row[3])
