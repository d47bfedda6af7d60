"""What certification reads of paper tables: their confirmed tally sheets, and which paper
tables still lack one (their commune cannot be certified yet).

The tally sheets are the tables slice's (`tally_sheets`, `tally_sheet_votes`, migration 0006):
only a sheet confirmed by a second officer of its table counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.results.counting import PaperSheet
from comuna_consultations.storage.models import TallySheet, TallySheetVote, VotingTable
from comuna_consultations.vocabulary import TableKind

voting_tables = cast(Table, VotingTable.__table__)
tally_sheets = cast(Table, TallySheet.__table__)
tally_sheet_votes = cast(Table, TallySheetVote.__table__)


async def confirmed_tally_sheets(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> list[PaperSheet]:
    """The confirmed tally sheet of every paper table (of `commune_ids`, or all): its votes per
    candidate, blank and null."""
    sheet = tally_sheets.c
    query = select(sheet.id, sheet.commune_id, sheet.table_id, sheet.blank, sheet.null_votes).where(
        sheet.consultation_id == consultation_id, sheet.confirmed_at.is_not(None)
    )
    if commune_ids is not None:
        query = query.where(sheet.commune_id.in_(commune_ids))
    sheets = (await session.execute(query)).all()
    if not sheets:
        return []
    vote = tally_sheet_votes.c
    votes: dict[uuid.UUID, dict[uuid.UUID, int]] = {}
    rows = select(vote.sheet_id, vote.candidate_id, vote.votes).where(vote.sheet_id.in_([s.id for s in sheets]))
    for sheet_id, candidate_id, count in await session.execute(rows):
        votes.setdefault(sheet_id, {})[candidate_id] = count
    return [PaperSheet(s.commune_id, s.table_id, votes.get(s.id, {}), s.blank, s.null_votes) for s in sheets]


async def paper_tables_without_confirmed_sheet(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, list[str]]:
    """Per commune, the codes of its paper tables with no confirmed tally sheet (sorted)."""
    t = voting_tables.c
    confirmed = exists().where(tally_sheets.c.table_id == t.id, tally_sheets.c.confirmed_at.is_not(None))
    query = select(t.commune_id, t.code).where(
        t.consultation_id == consultation_id, t.kind == TableKind.PAPER, ~confirmed
    )
    if commune_ids is not None:
        query = query.where(t.commune_id.in_(commune_ids))
    missing: dict[uuid.UUID, list[str]] = {}
    for commune_id, code in await session.execute(query.order_by(t.code)):
        missing.setdefault(commune_id, []).append(code)
    return missing
