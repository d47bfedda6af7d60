"""Queries of the voter roll. Residents, residences and territory versions are read through the
schema contract of issue 7 (docs: common design), as plain SQL, so the roll depends on those
tables' agreed column names only.

Eligible at a cut-off (one query, set-based): an `active` resident, born on or before `born_by`,
with a residence in force at the cut-off in a communal council whose version in force at the
cut-off is active and sits in one of the consultation's communes. A resident without a roll
base (migrated before roll bases existed) cannot be on a roll: `without_roll_base` counts them
so the freeze can say so.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_identity.storage.bulk_memory import use_bulk_memory
from comuna_identity.storage.models import VoterRoll, VoterRollCount, VoterRollEntry
from comuna_identity.vocabulary import RollStatus, RollTerritoryKind
from comuna_platform.voter_roll import ENTRY_BYTES_SQL

rolls = cast(Table, VoterRoll.__table__)
entries = cast(Table, VoterRollEntry.__table__)
counts = cast(Table, VoterRollCount.__table__)

ELIGIBLE = """
    SELECT r.id AS resident_id, r.roll_base, rr.council_id, tv.parent_id AS commune_id
    FROM residents r
    JOIN resident_residences rr ON rr.resident_id = r.id
     AND rr.valid_from <= :cutoff AND (rr.valid_until IS NULL OR :cutoff < rr.valid_until)
    JOIN territory_versions tv ON tv.territory_id = rr.council_id
     AND tv.valid_from <= :cutoff AND (tv.valid_until IS NULL OR :cutoff < tv.valid_until)
    WHERE r.status = 'active' AND r.birth_date <= :born_by AND r.roll_base IS NOT NULL
      AND tv.kind = 'communal_council' AND tv.status = 'active' AND tv.parent_id = ANY(:communes)
"""

_MISSING_KEYS = text(
    f"SELECT e.resident_id, e.roll_base FROM ({ELIGIBLE}) AS e"  # noqa: S608 (constants only)
    " WHERE NOT EXISTS (SELECT 1 FROM voter_roll_keys k"
    "  WHERE k.consultation_id = :consultation_id AND k.resident_id = e.resident_id)"
)

_INSERT_ENTRIES = text(
    "INSERT INTO voter_roll_entries (consultation_id, seq, voter_key, login_key, commune_id, council_id)"  # noqa: S608
    " SELECT :consultation_id, row_number() OVER (ORDER BY k.voter_key), k.voter_key, l.login_key,"
    "  e.commune_id, e.council_id"
    f" FROM ({ELIGIBLE}) AS e"
    " JOIN voter_roll_keys k ON k.consultation_id = :consultation_id AND k.resident_id = e.resident_id"
    # The login keys as two parallel arrays: the runtime role may not create temporary tables.
    " LEFT JOIN unnest(CAST(:login_residents AS uuid[]), CAST(:login_keys AS bytea[])) AS l(resident_id, login_key)"
    "  ON l.resident_id = e.resident_id"
)

# One pass over the entries: per council, then per commune from those (a commune without voters
# still gets its row, with 0).
_COUNTS = text(
    "INSERT INTO voter_roll_counts (consultation_id, territory_id, kind, commune_id, voters)"  # noqa: S608
    " WITH councils AS (SELECT council_id, commune_id, count(*) AS voters FROM voter_roll_entries"
    "  WHERE consultation_id = :consultation_id GROUP BY council_id, commune_id)"
    f" SELECT :consultation_id, council_id, '{RollTerritoryKind.COUNCIL}', commune_id, voters FROM councils"
    " UNION ALL"
    f" SELECT :consultation_id, c.id, '{RollTerritoryKind.COMMUNE}', c.id, coalesce(sum(councils.voters), 0)"
    "  FROM unnest(CAST(:communes AS uuid[])) AS c(id) LEFT JOIN councils ON councils.commune_id = c.id"
    "  GROUP BY c.id"
)


async def without_roll_base(session: AsyncSession, params: dict[str, Any]) -> int:
    """Residents eligible but for their missing roll base (left off the roll, and logged)."""
    query = text(
        ELIGIBLE.replace("r.roll_base IS NOT NULL", "r.roll_base IS NULL").replace(
            "SELECT r.id AS resident_id, r.roll_base, rr.council_id, tv.parent_id AS commune_id", "SELECT count(*)"
        )
    )
    return int((await session.execute(query, params)).scalar_one())


async def bulk_plans(conn: AsyncConnection | AsyncSession) -> None:
    """Plan the set-based statements of this transaction for millions of rows: hash joins, never
    nested loops. Estimates through the date ranges are far off (and `voter_roll_keys` grows
    during a prepare faster than its statistics), and one nested loop over 5 million residents
    against the keys is quadratic. A cursor is planned for its first rows unless told it will be
    read to the end. And sorts and hashes in memory (`bulk_memory`)."""
    await conn.execute(text("SET LOCAL enable_nestloop = off"))
    await conn.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))
    await use_bulk_memory(conn)


async def analyze_keys(conn: AsyncConnection) -> None:
    """Fresh statistics for the keys just prepared (the freeze joins millions of them)."""
    await conn.execute(text("ANALYZE voter_roll_keys"))


def eligibility_params(cutoff: date, born_by: date, communes: Sequence[uuid.UUID]) -> dict[str, Any]:
    return {"cutoff": cutoff, "born_by": born_by, "communes": list(communes)}


async def roll_of(session: AsyncSession, consultation_id: uuid.UUID, *, lock: bool = False) -> VoterRoll | None:
    query = select(VoterRoll).where(VoterRoll.consultation_id == consultation_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def insert_roll(session: AsyncSession, row: dict[str, Any]) -> bool:
    """True if this call recorded the roll, False if one was there already."""
    written = await session.execute(pg_insert(rolls).values(row).on_conflict_do_nothing().returning(rolls.c.status))
    return written.first() is not None


async def try_lock_roll(conn: AsyncConnection, consultation_id: uuid.UUID) -> bool:
    """A session advisory lock on the roll (held until the connection closes); False if taken."""
    lock = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
    taken = bool((await conn.execute(lock, {"key": f"voter-roll:{consultation_id}"})).scalar_one())
    await conn.commit()
    return taken


async def unlock_roll(conn: AsyncConnection, consultation_id: uuid.UUID) -> None:
    """Release the lock of `try_lock_roll` (the connection goes back to the pool: it must not keep it)."""
    unlock = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
    await conn.execute(unlock, {"key": f"voter-roll:{consultation_id}"})
    await conn.commit()


async def pending_rolls(session: AsyncSession) -> list[uuid.UUID]:
    query = select(rolls.c.consultation_id).where(rolls.c.status == RollStatus.PREPARING).order_by(rolls.c.requested_at)
    return list((await session.execute(query)).scalars())


async def existing_communes(session: AsyncSession, commune_ids: Sequence[uuid.UUID], day: date) -> set[uuid.UUID]:
    """The ids among `commune_ids` of communes or communal circuits in force on `day`."""
    query = text(
        "SELECT territory_id FROM territory_versions WHERE territory_id = ANY(:ids)"
        " AND kind IN ('commune', 'communal_circuit')"
        " AND valid_from <= :day AND (valid_until IS NULL OR :day < valid_until)"
    )
    return set((await session.execute(query, {"ids": list(commune_ids), "day": day})).scalars())


@dataclass(frozen=True, slots=True)
class Candidate:
    resident_id: uuid.UUID
    roll_base: bytes


async def missing_keys(
    conn: AsyncConnection, consultation_id: uuid.UUID, params: dict[str, Any], *, batch: int
) -> AsyncIterator[list[Candidate]]:
    """Eligible residents without a prepared entry key, `batch` at a time (a server-side cursor)."""
    await bulk_plans(conn)
    result = await conn.stream(
        _MISSING_KEYS.execution_options(yield_per=batch), {**params, "consultation_id": consultation_id}
    )
    async for part in result.partitions(batch):
        yield [Candidate(row.resident_id, bytes(row.roll_base)) for row in part]


async def copy_keys(conn: AsyncConnection, consultation_id: uuid.UUID, rows: Sequence[tuple[uuid.UUID, bytes]]) -> None:
    raw = await conn.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "voter_roll_keys",
        records=[(consultation_id, resident_id, key) for resident_id, key in rows],
        columns=["consultation_id", "resident_id", "voter_key"],
    )


async def linked_accounts(session: AsyncSession) -> list[tuple[uuid.UUID, str]]:
    """(resident id, Keycloak subject) of every linked account."""
    result = await session.execute(text("SELECT resident_id, subject FROM resident_accounts"))
    return [(row.resident_id, row.subject) for row in result]


async def write_entries(
    session: AsyncSession, consultation_id: uuid.UUID, params: dict[str, Any], logins: Sequence[tuple[uuid.UUID, bytes]]
) -> None:
    """Entries (from the prepared keys and the login keys given) and their counts, set-based."""
    await bulk_plans(session)
    await session.execute(
        _INSERT_ENTRIES,
        {
            **params,
            "consultation_id": consultation_id,
            "login_residents": [resident for resident, _ in logins],
            "login_keys": [key for _, key in logins],
        },
    )
    # Statistics for the rows just written, before the counts, the digest and every stream chunk
    # read them (see VoterRollEntry).
    await session.execute(text("ANALYZE voter_roll_entries"))
    await session.execute(_COUNTS, {"consultation_id": consultation_id, "communes": params["communes"]})


async def mark_frozen(
    session: AsyncSession,
    consultation_id: uuid.UUID,
    *,
    entry_count: int,
    digest: bytes,
    frozen_at: datetime,
    freeze_seconds: float,
    prepare_seconds: float,
) -> None:
    await session.execute(
        update(rolls)
        .where(rolls.c.consultation_id == consultation_id)
        .values(
            status=RollStatus.FROZEN,
            entry_count=entry_count,
            digest=digest,
            frozen_at=frozen_at,
            freeze_seconds=freeze_seconds,
            prepare_seconds=prepare_seconds,
        )
    )


async def add_prepare_seconds(session: AsyncSession, consultation_id: uuid.UUID, seconds: float) -> None:
    await session.execute(
        update(rolls)
        .where(rolls.c.consultation_id == consultation_id)
        .values(prepare_seconds=func.coalesce(rolls.c.prepare_seconds, 0.0) + seconds)
    )


async def counts_of(session: AsyncSession, consultation_id: uuid.UUID) -> list[VoterRollCount]:
    query = (
        select(VoterRollCount)
        .where(VoterRollCount.consultation_id == consultation_id)
        .order_by(VoterRollCount.kind, VoterRollCount.commune_id, VoterRollCount.territory_id)
    )
    return list((await session.execute(query)).scalars())


async def entries_chunk(
    session: AsyncSession, consultation_id: uuid.UUID, *, after_seq: int, limit: int
) -> tuple[int, int, bytes]:
    """(first seq, number of entries, their canonical encoding) after `after_seq`, in seq order."""
    statement = text(
        "SELECT min(seq) AS first, count(*) AS n, string_agg(entry, ''::bytea ORDER BY seq) AS packed FROM ("  # noqa: S608
        f" SELECT seq, {ENTRY_BYTES_SQL} AS entry FROM voter_roll_entries"
        " WHERE consultation_id = :c AND seq > :after ORDER BY seq LIMIT :n) AS page"
    )
    row = (await session.execute(statement, {"c": consultation_id, "after": after_seq, "n": limit})).one()
    if not row.n:
        return after_seq + 1, 0, b""
    return int(row.first), int(row.n), bytes(row.packed)


async def entry_by_key(session: AsyncSession, consultation_id: uuid.UUID, voter_key: bytes) -> VoterRollEntry | None:
    query = select(VoterRollEntry).where(
        VoterRollEntry.consultation_id == consultation_id, VoterRollEntry.voter_key == voter_key
    )
    return (await session.execute(query)).scalar_one_or_none()


async def resident_of_subject(session: AsyncSession, subject: str) -> tuple[uuid.UUID, bytes] | None:
    """(resident id, roll base) of the resident linked to a Keycloak subject."""
    row = (
        await session.execute(
            text(
                "SELECT r.id, r.roll_base FROM resident_accounts a JOIN residents r ON r.id = a.resident_id"
                " WHERE a.subject = :subject"
            ),
            {"subject": subject},
        )
    ).first()
    return (row.id, bytes(row.roll_base)) if row is not None else None


async def territory_names(
    session: AsyncSession, ids: Sequence[uuid.UUID], day: date
) -> dict[uuid.UUID, tuple[str, str]]:
    """id -> (code, name in force on `day`)."""
    query = text(
        "SELECT t.id, t.code, v.name FROM territories t JOIN territory_versions v ON v.territory_id = t.id"
        " AND v.valid_from <= :day AND (v.valid_until IS NULL OR :day < v.valid_until) WHERE t.id = ANY(:ids)"
    )
    return {row.id: (row.code, row.name) for row in await session.execute(query, {"ids": list(ids), "day": day})}
