"""Each consultation's public record: a log in the platform's log tables of this database
(`models.record_tables`), named by the deployment's origin prefix (`log_origin`), and its
indexes here (receipts, ballot tallies by commune, signed bulletins).
The voting, tables, offline and results slices append to it, the record slice serves it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from comuna_consultations.storage.models import RecordBulletin, RecordTally, record_tables
from comuna_platform.tlog.note import Signer, Verifier
from comuna_platform.tlog.store import TransparencyLog

# (commune, candidate or None: blank, votes): a tally line of a ballot entry.
TallyLine = tuple[uuid.UUID, uuid.UUID | None, int]

record_tallies = cast(Table, RecordTally.__table__)
record_bulletins = cast(Table, RecordBulletin.__table__)


def log_origin(prefix: str, consultation_id: uuid.UUID) -> str:
    """The log's origin (C2SP checkpoint origin line) under the deployment's prefix."""
    return f"{prefix.rstrip('/')}/consultations/{consultation_id}"


def consultation_log(origin_prefix: str, consultation_id: uuid.UUID) -> TransparencyLog:
    return TransparencyLog(record_tables, log_origin(origin_prefix, consultation_id))


@dataclass(frozen=True, slots=True)
class Record:
    """Where this deployment's consultation logs live, who signs their checkpoints and
    bulletins (every key: two while a rotation overlaps), and whose cosignatures it keeps."""

    origin_prefix: str
    signers: tuple[Signer, ...] = ()
    witnesses: tuple[Verifier, ...] = ()

    def log(self, consultation_id: uuid.UUID) -> TransparencyLog:
        return consultation_log(self.origin_prefix, consultation_id)


async def index_tallies(
    conn: AsyncConnection, consultation_id: uuid.UUID, entry_index: int, tallies: Sequence[TallyLine]
) -> None:
    if tallies:
        await conn.execute(
            insert(record_tallies),
            [
                {
                    "consultation_id": consultation_id,
                    "entry_index": entry_index,
                    "line": line,
                    "commune_id": commune_id,
                    "candidate_id": candidate_id,
                    "votes": votes,
                }
                for line, (commune_id, candidate_id, votes) in enumerate(tallies)
            ],
        )


async def logged_tallies(
    conn: AsyncConnection, consultation_id: uuid.UUID, commune_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[uuid.UUID | None, int]]:
    """Per commune, the votes per choice (None: blank) the ballot entries of the record count."""
    t = record_tallies.c
    query = (
        select(t.commune_id, t.candidate_id, func.sum(t.votes))
        .where(t.consultation_id == consultation_id, t.commune_id.in_(commune_ids))
        .group_by(t.commune_id, t.candidate_id)
    )
    logged: dict[uuid.UUID, dict[uuid.UUID | None, int]] = {}
    for commune_id, candidate_id, votes in await conn.execute(query):
        logged.setdefault(commune_id, {})[candidate_id] = int(votes)
    return logged


async def insert_bulletins(conn: AsyncConnection, rows: Sequence[dict[str, object]]) -> None:
    if rows:
        await conn.execute(insert(record_bulletins), list(rows))


@dataclass(frozen=True, slots=True)
class BulletinRef:
    entry_index: int
    commune_id: uuid.UUID
    version: int
    channel: str
    table_code: str | None


async def bulletins_of(conn: AsyncConnection, consultation_id: uuid.UUID) -> list[BulletinRef]:
    b = record_bulletins.c
    query = (
        select(b.entry_index, b.commune_id, b.version, b.channel, b.table_code)
        .where(b.consultation_id == consultation_id)
        .order_by(b.entry_index)
    )
    return [BulletinRef(int(r[0]), r[1], int(r[2]), str(r[3]), r[4]) for r in await conn.execute(query)]


async def bulletin_note(conn: AsyncConnection, consultation_id: uuid.UUID, entry_index: int) -> str | None:
    b = record_bulletins.c
    found = await conn.execute(select(b.note).where(b.consultation_id == consultation_id, b.entry_index == entry_index))
    note = found.scalar_one_or_none()
    return None if note is None else str(note)
