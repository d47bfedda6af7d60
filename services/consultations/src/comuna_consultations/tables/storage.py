"""Queries of the tables slice: centres and tables, the roll checks of a check-in, paper
check-ins and tally sheets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, and_, delete, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.storage.models import (
    TallySheet,
    TallySheetVote,
    VotingCentre,
    VotingCentreCommune,
    VotingTable,
)
from comuna_consultations.storage.repository import (
    candidates,
    communes,
    participations,
    roll_entries,
    roll_loads,
)
from comuna_consultations.vocabulary import ParticipationChannel, RollLoadStatus

centres = cast(Table, VotingCentre.__table__)
centre_communes = cast(Table, VotingCentreCommune.__table__)
tables = cast(Table, VotingTable.__table__)
sheets = cast(Table, TallySheet.__table__)
sheet_votes = cast(Table, TallySheetVote.__table__)

Executor = AsyncSession | AsyncConnection


# --- centres and tables ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CentreRow:
    id: uuid.UUID
    code: str
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class TableRow:
    id: uuid.UUID
    consultation_id: uuid.UUID
    code: str
    kind: str
    centre_id: uuid.UUID
    centre_code: str
    commune_id: uuid.UUID
    commune_code: str


async def commune_ids_by_code(session: AsyncSession, consultation_id: uuid.UUID) -> dict[str, uuid.UUID]:
    query = select(communes.c.code, communes.c.commune_id).where(communes.c.consultation_id == consultation_id)
    return {row.code: row.commune_id for row in await session.execute(query)}


async def centres_by_code(
    session: AsyncSession, consultation_id: uuid.UUID, codes: Iterable[str]
) -> dict[str, CentreRow]:
    query = select(centres.c.id, centres.c.code, centres.c.name, centres.c.address).where(
        centres.c.consultation_id == consultation_id, centres.c.code.in_(list(codes))
    )
    return {row.code: CentreRow(row.id, row.code, row.name, row.address) for row in await session.execute(query)}


async def communes_of_centres(
    session: AsyncSession, centre_ids: Iterable[uuid.UUID]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    query = select(centre_communes.c.centre_id, centre_communes.c.commune_id).where(
        centre_communes.c.centre_id.in_(list(centre_ids))
    )
    return {(row.centre_id, row.commune_id) for row in await session.execute(query)}


def _table_query() -> Any:
    return select(
        tables.c.id,
        tables.c.consultation_id,
        tables.c.code,
        tables.c.kind,
        tables.c.centre_id,
        centres.c.code.label("centre_code"),
        tables.c.commune_id,
        communes.c.code.label("commune_code"),
    ).select_from(
        tables.join(centres, centres.c.id == tables.c.centre_id).join(
            communes,
            and_(communes.c.consultation_id == tables.c.consultation_id, communes.c.commune_id == tables.c.commune_id),
        )
    )


def _table_row(row: Row[Any]) -> TableRow:
    return TableRow(
        row.id,
        row.consultation_id,
        row.code,
        row.kind,
        row.centre_id,
        row.centre_code,
        row.commune_id,
        row.commune_code,
    )


async def tables_by_code(session: Executor, consultation_id: uuid.UUID, codes: Sequence[str]) -> dict[str, TableRow]:
    query = _table_query().where(tables.c.consultation_id == consultation_id, tables.c.code.in_(list(codes)))
    return {row.code: _table_row(row) for row in await session.execute(query)}


async def table_by_code(session: Executor, consultation_id: uuid.UUID, code: str) -> TableRow | None:
    query = _table_query().where(tables.c.consultation_id == consultation_id, tables.c.code == code)
    row = (await session.execute(query)).first()
    return _table_row(row) if row is not None else None


async def insert_centres(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(centres), rows)


async def insert_centre_communes(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(pg_insert(centre_communes).values(rows).on_conflict_do_nothing())


async def insert_tables(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(tables), rows)


@dataclass(frozen=True, slots=True)
class CentreListing:
    code: str
    name: str
    address: str
    commune_codes: list[str]


async def list_centres(
    session: AsyncSession, consultation_id: uuid.UUID, *, after_code: str, limit: int
) -> list[CentreListing]:
    served = (
        select(func.coalesce(func.array_agg(communes.c.code.distinct()), []))
        .select_from(
            centre_communes.join(
                communes,
                and_(
                    communes.c.consultation_id == centre_communes.c.consultation_id,
                    communes.c.commune_id == centre_communes.c.commune_id,
                ),
            )
        )
        .where(centre_communes.c.centre_id == centres.c.id)
        .scalar_subquery()
    )
    query = (
        select(centres.c.code, centres.c.name, centres.c.address, served.label("commune_codes"))
        .where(centres.c.consultation_id == consultation_id, centres.c.code > after_code)
        .order_by(centres.c.code)
        .limit(limit)
    )
    return [
        CentreListing(row.code, row.name, row.address, sorted(row.commune_codes or []))
        for row in await session.execute(query)
    ]


async def list_tables(
    session: AsyncSession,
    consultation_id: uuid.UUID,
    *,
    after_code: str,
    limit: int,
    commune_id: uuid.UUID | None = None,
    centre_code: str | None = None,
) -> list[TableRow]:
    query = (
        _table_query()
        .where(tables.c.consultation_id == consultation_id, tables.c.code > after_code)
        .order_by(tables.c.code)
        .limit(limit)
    )
    if commune_id is not None:
        query = query.where(tables.c.commune_id == commune_id)
    if centre_code is not None:
        query = query.where(centres.c.code == centre_code)
    return [_table_row(row) for row in await session.execute(query)]


async def lock_table(session: AsyncSession, table_id: uuid.UUID) -> None:
    """Serialises the sheet operations of one table. NO KEY UPDATE: it does not wait for (or
    block) the KEY SHARE locks that rows referencing the table take."""
    await session.execute(select(tables.c.id).where(tables.c.id == table_id).with_for_update(key_share=True))


# --- the roll, for check-ins -------------------------------------------------------------


async def verified_voter_key(session: Executor, consultation_id: uuid.UUID) -> bytes | None:
    query = select(roll_loads.c.voter_key).where(
        roll_loads.c.consultation_id == consultation_id, roll_loads.c.status == RollLoadStatus.VERIFIED.value
    )
    key = (await session.execute(query)).scalar_one_or_none()
    return bytes(key) if key is not None else None


async def on_commune_roll(
    session: Executor, consultation_id: uuid.UUID, voter_key: bytes, commune_id: uuid.UUID
) -> bool:
    query = select(roll_entries.c.seq).where(
        roll_entries.c.consultation_id == consultation_id,
        roll_entries.c.voter_key == voter_key,
        roll_entries.c.commune_id == commune_id,
    )
    return (await session.execute(query)).first() is not None


async def may_vote(
    session: Executor, consultation_id: uuid.UUID, voter_key: bytes, voter_ref: str, commune_id: uuid.UUID
) -> bool:
    """On this commune's roll and no participation yet, in one statement (one answer, no reason)."""
    on_roll = exists().where(
        roll_entries.c.consultation_id == consultation_id,
        roll_entries.c.voter_key == voter_key,
        roll_entries.c.commune_id == commune_id,
    )
    took_part = exists().where(
        participations.c.consultation_id == consultation_id, participations.c.voter_ref == voter_ref
    )
    return bool((await session.execute(select(and_(on_roll, ~took_part)))).scalar_one())


async def paper_check_ins(session: Executor, table_id: uuid.UUID) -> int:
    """The check-ins recorded at one paper table (read only once its commune's voting closed)."""
    query = (
        select(func.count())
        .select_from(participations)
        .where(participations.c.table_id == table_id, participations.c.channel == ParticipationChannel.PAPER.value)
    )
    return int((await session.execute(query)).scalar_one())


# --- tally sheets ------------------------------------------------------------------------


async def candidate_communes(
    session: AsyncSession, consultation_id: uuid.UUID, candidate_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    query = select(candidates.c.id, candidates.c.commune_id).where(
        candidates.c.consultation_id == consultation_id, candidates.c.id.in_(list(candidate_ids))
    )
    return {row.id: row.commune_id for row in await session.execute(query)}


async def commune_candidates(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> list[uuid.UUID]:
    query = (
        select(candidates.c.id)
        .where(candidates.c.consultation_id == consultation_id, candidates.c.commune_id == commune_id)
        .order_by(candidates.c.assembly_priority)
    )
    return list((await session.execute(query)).scalars())


async def sheet_of_table(session: AsyncSession, table_id: uuid.UUID) -> TallySheet | None:
    query = select(TallySheet).where(TallySheet.table_id == table_id)
    return (await session.execute(query)).scalar_one_or_none()


async def sheet_votes_of(session: AsyncSession, sheet_id: uuid.UUID) -> dict[uuid.UUID, int]:
    query = select(sheet_votes.c.candidate_id, sheet_votes.c.votes).where(sheet_votes.c.sheet_id == sheet_id)
    return {row.candidate_id: int(row.votes) for row in await session.execute(query)}


async def delete_sheet(session: AsyncSession, sheet_id: uuid.UUID) -> None:
    await session.execute(delete(sheets).where(sheets.c.id == sheet_id, sheets.c.confirmed_at.is_(None)))


async def insert_sheet(session: AsyncSession, sheet: dict[str, Any], votes: list[dict[str, Any]]) -> None:
    await session.execute(insert(sheets), [sheet])
    if votes:
        await session.execute(insert(sheet_votes), votes)


async def confirm_sheet(session: AsyncSession, sheet_id: uuid.UUID, *, by: str, at: datetime) -> bool:
    """False when the sheet is gone or already confirmed (the row decides, also under concurrency)."""
    confirmed = await session.execute(
        update(sheets)
        .where(sheets.c.id == sheet_id, sheets.c.confirmed_at.is_(None), sheets.c.submitted_by != by)
        .values(confirmed_by=by, confirmed_at=at)
        .returning(sheets.c.id)
    )
    return confirmed.first() is not None
