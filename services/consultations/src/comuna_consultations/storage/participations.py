"""One participation per person per consultation, for every channel: `take_part`.

The primary key of `participations` (consultation_id, voter_ref) is the one-person-one-vote
guarantee; this module only asks PostgreSQL to apply it to many rows at once and keeps every
refusal as a `participation_conflicts` row (never silently dropped). The ballot group commit
(`voting.group_commit`), paper check-ins (tables) and offline syncs call it inside their own
transaction, so a participation and what depends on it commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import Boolean, String

from comuna_consultations.vocabulary import ParticipationChannel


@dataclass(frozen=True, slots=True)
class ParticipationRow:
    """That one person took part, where. `voter_ref` is the consultation's pseudonym of the
    person (`domain.pseudonyms`); `ballot_counted` is recorded on the conflict row if this
    participation is refused (True only where a ballot of the refused attempt stays counted,
    e.g. an offline table's)."""

    consultation_id: uuid.UUID
    voter_ref: str
    commune_id: uuid.UUID
    channel: str
    table_id: uuid.UUID | None = None
    ballot_counted: bool = False


_INSERT = text(
    "INSERT INTO participations (consultation_id, voter_ref, commune_id, channel, table_id)"
    " SELECT * FROM unnest(:consultation_ids, :voter_refs, :commune_ids, :channels, :table_ids)"
    " ON CONFLICT (consultation_id, voter_ref) DO NOTHING"
    " RETURNING consultation_id, voter_ref"
).bindparams(
    bindparam("consultation_ids", type_=ARRAY(Uuid())),
    bindparam("voter_refs", type_=ARRAY(String())),
    bindparam("commune_ids", type_=ARRAY(Uuid())),
    bindparam("channels", type_=ARRAY(String())),
    bindparam("table_ids", type_=ARRAY(Uuid())),
)

_CONFLICTS = text(
    "INSERT INTO participation_conflicts"
    " (id, consultation_id, commune_id, voter_ref, channel, table_id, ballot_counted)"
    " SELECT * FROM unnest(:ids, :consultation_ids, :commune_ids, :voter_refs, :channels, :table_ids, :counted)"
).bindparams(
    bindparam("ids", type_=ARRAY(Uuid())),
    bindparam("consultation_ids", type_=ARRAY(Uuid())),
    bindparam("commune_ids", type_=ARRAY(Uuid())),
    bindparam("voter_refs", type_=ARRAY(String())),
    bindparam("channels", type_=ARRAY(String())),
    bindparam("table_ids", type_=ARRAY(Uuid())),
    bindparam("counted", type_=ARRAY(Boolean())),
)


def _stored_table(row: ParticipationRow) -> uuid.UUID | None:
    """The table a participation row names: none at an electronic table, whose ballot row names
    it (the same table on both rows would pair the only voter of a table in a batch with their
    ballot); a conflict row keeps it (a refused attempt has no ballot)."""
    return None if row.channel == ParticipationChannel.TABLE.value else row.table_id


async def take_part(conn: AsyncConnection | AsyncSession, rows: Sequence[ParticipationRow]) -> list[bool]:
    """Insert the participations that are new; a conflict row for each refused one.

    Returns, in the order of `rows`, True where the row is a new participation. Two rows of one
    person in `rows` count as two attempts: the first may be new, the second is a conflict.
    Runs inside the caller's transaction (two statements, whatever the number of rows).
    """
    first: dict[tuple[uuid.UUID, str], int] = {}
    for index, row in enumerate(rows):
        first.setdefault((row.consultation_id, row.voter_ref), index)
    # In key order: concurrent batches that share people then lock their index entries in the
    # same order (no deadlock), and the heap order of participations says nothing about arrival.
    candidates = sorted(first.values(), key=lambda index: (rows[index].consultation_id.bytes, rows[index].voter_ref))
    inserted: set[tuple[uuid.UUID, str]] = set()
    if candidates:
        chosen = [rows[index] for index in candidates]
        result = await conn.execute(
            _INSERT,
            {
                "consultation_ids": [row.consultation_id for row in chosen],
                "voter_refs": [row.voter_ref for row in chosen],
                "commune_ids": [row.commune_id for row in chosen],
                "channels": [row.channel for row in chosen],
                "table_ids": [_stored_table(row) for row in chosen],
            },
        )
        inserted = {(consultation_id, voter_ref) for consultation_id, voter_ref in result.all()}
    taken = [
        first[(row.consultation_id, row.voter_ref)] == index and (row.consultation_id, row.voter_ref) in inserted
        for index, row in enumerate(rows)
    ]
    refused = sorted(
        (row for row, new in zip(rows, taken, strict=True) if not new),
        key=lambda row: (row.consultation_id.bytes, row.voter_ref),
    )
    if refused:
        await conn.execute(
            _CONFLICTS,
            {
                "ids": [uuid.uuid4() for _ in refused],
                "consultation_ids": [row.consultation_id for row in refused],
                "commune_ids": [row.commune_id for row in refused],
                "voter_refs": [row.voter_ref for row in refused],
                "channels": [row.channel for row in refused],
                "table_ids": [row.table_id for row in refused],
                "counted": [row.ballot_counted for row in refused],
            },
        )
    return taken
