"""Queries of the offline slice: what a snapshot holds, and what a sync writes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.storage.models import OfflineSync, ParticipationConflict, VotingTable
from comuna_consultations.storage.repository import ballots, candidates, participations, roll_entries

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
class ParticipationRow:
    """One person taking part (BALLOTS' `voting.participations.ParticipationRow`, same fields)."""

    consultation_id: uuid.UUID
    voter_ref: str
    commune_id: uuid.UUID
    channel: str
    table_id: uuid.UUID | None = None
    # Recorded on the conflict row if refused: whether a ballot of this attempt stays counted.
    ballot_counted: bool = False


async def take_part(conn: AsyncConnection, rows: Sequence[ParticipationRow]) -> list[bool]:
    """Insert the participations, ON CONFLICT DO NOTHING; a refused row becomes a
    `participation_conflicts` row. True = a new participation.

    LOCAL STAND-IN with the signature of BALLOTS' `voting.participations.take_part`: at merge
    the offline sync calls BALLOTS' version and this function goes.
    """
    if not rows:
        return []
    inserted = await conn.execute(
        pg_insert(participations)
        .values(
            [
                {
                    "consultation_id": r.consultation_id,
                    "voter_ref": r.voter_ref,
                    "commune_id": r.commune_id,
                    "channel": r.channel,
                    "table_id": r.table_id,
                }
                for r in rows
            ]
        )
        .on_conflict_do_nothing(index_elements=["consultation_id", "voter_ref"])
        .returning(participations.c.voter_ref)
    )
    new = set(inserted.scalars())
    refused = [r for r in rows if r.voter_ref not in new]
    if refused:
        await conn.execute(
            insert(conflicts),
            [
                {
                    "id": uuid.uuid4(),
                    "consultation_id": r.consultation_id,
                    "commune_id": r.commune_id,
                    "voter_ref": r.voter_ref,
                    "channel": r.channel,
                    "table_id": r.table_id,
                    "ballot_counted": r.ballot_counted,
                }
                for r in refused
            ],
        )
    return [r.voter_ref in new for r in rows]


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
