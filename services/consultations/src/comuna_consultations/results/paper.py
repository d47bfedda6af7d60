"""What certification reads of paper tables: their confirmed tally sheets, and which paper
tables still lack one (their commune cannot be certified yet).

The seam with TABLES (issue 8): TABLES owns the tally sheets (migration 0006). Until its table
is merged, no sheet is ever confirmed, so a commune with a paper table is always blocked and
no paper vote is counted; the lead wires these two functions to the sheets table at merge.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.results.counting import PaperSheet
from comuna_consultations.storage.models import VotingTable
from comuna_consultations.vocabulary import TableKind

voting_tables = cast(Table, VotingTable.__table__)


async def confirmed_tally_sheets(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> list[PaperSheet]:
    """The confirmed tally sheet of every paper table (of `commune_ids`, or all): its votes per
    candidate, blank and null. Lead: read TABLES' confirmed sheets here."""
    return []


async def paper_tables_without_confirmed_sheet(
    session: AsyncSession, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, list[str]]:
    """Per commune, the codes of its paper tables with no confirmed tally sheet (sorted).
    Lead: exclude the tables whose sheet TABLES recorded as confirmed."""
    t = voting_tables.c
    query = select(t.commune_id, t.code).where(t.consultation_id == consultation_id, t.kind == TableKind.PAPER)
    if commune_ids is not None:
        query = query.where(t.commune_id.in_(commune_ids))
    missing: dict[uuid.UUID, list[str]] = {}
    for commune_id, code in await session.execute(query.order_by(t.code)):
        missing.setdefault(commune_id, []).append(code)
    return missing
