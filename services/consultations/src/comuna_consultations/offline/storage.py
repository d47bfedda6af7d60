"""Queries of the offline slice: what a snapshot holds, and what a sync writes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.storage.models import OfflineSync, ParticipationConflict, VotingTable
from comuna_consultations.storage.repository import ballots, candidates, roll_entries

offline_syncs = cast(Table, OfflineSync.__table__)
voting_tables = cast(Table, VotingTable.__table__)
conflicts = cast(Table, ParticipationConflict.__table__)


async def table_by_code(
    session: AsyncSession, consultation_id: uuid.UUID, code: str, *, lock: bool = False
) -> VotingTable | None:
    """The table of this consultation with this code. (TABLES' `tables.lookup.table_by_code` is
    the shared one; this local equivalent adds the lock a sync takes: syncs of one table run
    one after the other, so each sees the totals of the previous ones.)"""
    query = select(VotingTable).where(VotingTable.consultation_id == consultation_id, VotingTable.code == code)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class CandidateRow:
    id: uuid.UUID
    title: str
    assembly_priority: int


async def commune_candidates(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> list[CandidateRow]:
    query = (
        select(candidates.c.id, candidates.c.title, candidates.c.assembly_priority)
        .where(candidates.c.consultation_id == consultation_id, candidates.c.commune_id == commune_id)
        .order_by(candidates.c.assembly_priority)
    )
    return [CandidateRow(r.id, r.title, r.assembly_priority) for r in await session.execute(query)]


async def commune_entry_keys(session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID) -> list[bytes]:
    query = select(roll_entries.c.voter_key).where(
        roll_entries.c.consultation_id == consultation_id, roll_entries.c.commune_id == commune_id
    )
    return [bytes(key) for key in (await session.execute(query)).scalars()]


async def keys_on_commune_roll(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID, keys: Sequence[bytes]
) -> set[bytes]:
    """Which of `keys` are entries of this commune's roll."""
    if not keys:
        return set()
    query = select(roll_entries.c.voter_key).where(
        roll_entries.c.consultation_id == consultation_id,
        roll_entries.c.commune_id == commune_id,
        roll_entries.c.voter_key.in_(list(keys)),
    )
    return {bytes(key) for key in (await session.execute(query)).scalars()}


async def synced_batch(session: AsyncSession, batch_id: uuid.UUID) -> OfflineSync | None:
    return await session.get(OfflineSync, batch_id)


@dataclass(frozen=True, slots=True)
class Totals:
    checkins: int
    votes: int  # ballots + null votes


async def table_totals(session: AsyncSession, consultation_id: uuid.UUID, table_id: uuid.UUID) -> Totals:
    """What earlier batches of this table brought (internal check only, never shown)."""
    query = select(
        func.coalesce(func.sum(offline_syncs.c.checkins), 0),
        func.coalesce(func.sum(offline_syncs.c.ballots + offline_syncs.c.null_votes), 0),
    ).where(offline_syncs.c.consultation_id == consultation_id, offline_syncs.c.table_id == table_id)
    checkins, votes = (await session.execute(query)).one()
    return Totals(int(checkins), int(votes))


@dataclass(frozen=True, slots=True)
class BallotRow:
    id: uuid.UUID
    candidate_id: uuid.UUID | None


async def insert_ballots(
    conn: AsyncConnection,
    *,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    table_id: uuid.UUID,
    channel: str,
    rows: Sequence[BallotRow],
) -> None:
    if not rows:
        return
    await conn.execute(
        insert(ballots),
        [
            {
                "id": row.id,
                "consultation_id": consultation_id,
                "commune_id": commune_id,
                "candidate_id": row.candidate_id,
                "channel": channel,
                "table_id": table_id,
            }
            for row in rows
        ],
    )


async def record_sync(conn: AsyncConnection, values: dict[str, object]) -> None:
    await conn.execute(insert(offline_syncs).values(**values))
