"""One participation per person across every channel: the insert that refuses a second one and
records it as a conflict.

LOCAL STAND-IN for BALLOTS' `comuna_consultations.voting.participations.take_part` (same
signature and behaviour, per the issue-8 contract); at merge the lead points the callers at
BALLOTS' version and deletes this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from comuna_consultations.storage.models import ParticipationConflict
from comuna_consultations.storage.repository import participations
from comuna_consultations.vocabulary import ParticipationChannel
from comuna_platform.ids import new_id

conflicts = cast(Table, ParticipationConflict.__table__)


@dataclass(frozen=True, slots=True)
class ParticipationRow:
    consultation_id: uuid.UUID
    # The roll entry key in hex (`roll_entries.voter_key`).
    voter_ref: str
    commune_id: uuid.UUID
    channel: ParticipationChannel
    table_id: uuid.UUID | None = None
    # For a refused row: whether a ballot of that attempt is nevertheless counted (offline tables).
    ballot_counted: bool = False


async def take_part(conn: AsyncConnection, rows: Sequence[ParticipationRow]) -> list[bool]:
    """Insert the participations (ON CONFLICT DO NOTHING); for each refused row write a
    `participation_conflicts` row. True = a new participation. The primary key decides, so
    two concurrent attempts of one person yield one True, whatever channel each came through."""
    out: list[bool] = []
    for row in rows:
        inserted = await conn.execute(
            pg_insert(participations)
            .values(
                consultation_id=row.consultation_id,
                voter_ref=row.voter_ref,
                commune_id=row.commune_id,
                channel=row.channel.value,
                table_id=row.table_id,
            )
            .on_conflict_do_nothing(index_elements=["consultation_id", "voter_ref"])
            .returning(participations.c.voter_ref)
        )
        new = inserted.first() is not None
        if not new:
            await conn.execute(
                insert(conflicts).values(
                    id=new_id(),
                    consultation_id=row.consultation_id,
                    commune_id=row.commune_id,
                    voter_ref=row.voter_ref,
                    channel=row.channel.value,
                    table_id=row.table_id,
                    ballot_counted=row.ballot_counted,
                )
            )
        out.append(new)
    return out
