# ruff: noqa: S608  (table names below are this module's constants; every value is a bound parameter)
"""The set-based SQL of a census import: staging tables, checks, merge. No business rules here.

Rows arrive by COPY into temporary tables that live until the transaction ends; every check
and the merge are a handful of statements over the whole file, never one per resident.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage.bulk_memory import use_bulk_memory

STAGING = "census_import"
OLDER = "census_import_older"
RESOLVED = "census_import_resolved"
STAGING_COLUMNS = ("line", "key_id", "hash", "roll_base", "birth_date", "council_code", "valid_from", "status")


async def create_staging(session: AsyncSession) -> None:
    await use_bulk_memory(session)
    await session.execute(
        text(
            f"CREATE TEMP TABLE {STAGING} (line integer NOT NULL, key_id smallint NOT NULL, hash bytea NOT NULL,"
            " roll_base bytea, birth_date date NOT NULL, council_code text NOT NULL,"
            " valid_from date NOT NULL, status text) ON COMMIT DROP"
        )
    )
    await session.execute(
        text(
            f"CREATE TEMP TABLE {OLDER} (line integer NOT NULL, key_id smallint NOT NULL, hash bytea NOT NULL)"
            " ON COMMIT DROP"
        )
    )


async def _driver(session: AsyncSession) -> Any:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def copy_rows(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        await (await _driver(session)).copy_records_to_table(STAGING, records=rows, columns=STAGING_COLUMNS)


async def with_roll_base(session: AsyncSession, key_id: int, hashes: Sequence[bytes]) -> set[bytes]:
    """Which of `hashes` (under `key_id`) the census holds already, with a roll base."""
    if not hashes:
        return set()
    found = await (await _driver(session)).fetch(
        "SELECT document_hash FROM residents WHERE document_key_id = $1 AND document_hash = ANY($2::bytea[])"
        " AND roll_base IS NOT NULL",
        key_id,
        list(hashes),
    )
    return {bytes(row[0]) for row in found}


async def copy_older(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        await (await _driver(session)).copy_records_to_table(OLDER, records=rows, columns=("line", "key_id", "hash"))


# Lines of the same person twice in the file, each with the first line they appear on.
_DUPLICATES = f"""
WITH twice AS (SELECT hash FROM {STAGING} GROUP BY hash HAVING count(*) > 1)
SELECT line, first FROM (
    SELECT s.line, min(s.line) OVER (PARTITION BY s.hash) AS first FROM {STAGING} s JOIN twice USING (hash)
) d WHERE line <> first ORDER BY line LIMIT :cap
"""
_DUPLICATES_COUNT = (
    f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {STAGING} GROUP BY hash) g WHERE n > 1"
)


@dataclass(frozen=True)
class Duplicates:
    lines: list[tuple[int, int]]
    count: int


async def duplicates(session: AsyncSession, cap: int) -> Duplicates:
    await session.execute(text(f"ANALYZE {STAGING}"))
    lines = [(int(r[0]), int(r[1])) for r in (await session.execute(text(_DUPLICATES), {"cap": cap})).all()]
    count = int((await session.execute(text(_DUPLICATES_COUNT))).scalar_one()) if lines else 0
    return Duplicates(lines, count)


async def resolve(session: AsyncSession, *, with_older: bool) -> None:
    """One row per staged line: the council, the resident it is (if known), their state before."""
    older = (
        f" UNION ALL SELECT o.line, r.id FROM {OLDER} o"
        " JOIN residents r ON r.document_hash = o.hash AND r.document_key_id = o.key_id"
        if with_older
        else ""
    )
    await session.execute(
        text(
            f"CREATE TEMP TABLE {RESOLVED} ON COMMIT DROP AS"
            " WITH matched AS ("
            f"  SELECT s.line, r.id AS resident_id FROM {STAGING} s"
            "   JOIN residents r ON r.document_hash = s.hash AND r.document_key_id = s.key_id"
            f"  {older})"
            " SELECT s.*, t.id AS council_id, tv.parent_id AS commune_id, m.resident_id AS existing_id,"
            "  coalesce(m.resident_id, gen_random_uuid()) AS resident_id,"
            "  r.document_key_id AS old_key_id, r.birth_date AS old_birth_date, r.status AS old_status,"
            "  r.status_since AS old_status_since, r.roll_base AS old_roll_base,"
            "  rr.id AS old_residence_id, rr.council_id AS old_council_id, rr.valid_from AS old_valid_from,"
            "  ot.code AS old_council_code,"
            "  m.resident_id IS NULL AS is_new,"
            "  m.resident_id IS NOT NULL AND rr.council_id IS DISTINCT FROM t.id AS moves,"
            "  m.resident_id IS NOT NULL AND (r.birth_date <> s.birth_date"
            # A staged roll base is None when the census holds this person's already (`with_roll_base`).
            "   OR (s.roll_base IS NOT NULL AND r.roll_base IS DISTINCT FROM s.roll_base)"
            "   OR (s.status IS NOT NULL AND s.status <> r.status)) AS updates"
            f" FROM {STAGING} s"
            # The council as it stands on the day the residence starts: a council, and not dissolved.
            " LEFT JOIN (territories t JOIN territory_versions tv ON tv.territory_id = t.id)"
            "  ON t.code = s.council_code AND tv.kind = 'communal_council' AND tv.status = 'active'"
            "  AND tv.valid_from <= s.valid_from AND (tv.valid_until IS NULL OR s.valid_from < tv.valid_until)"
            " LEFT JOIN matched m ON m.line = s.line"
            " LEFT JOIN residents r ON r.id = m.resident_id"
            " LEFT JOIN resident_residences rr ON rr.resident_id = m.resident_id AND rr.valid_until IS NULL"
            " LEFT JOIN territories ot ON ot.id = rr.council_id"
        )
    )
    await session.execute(text(f"CREATE INDEX ON {RESOLVED} (line)"))
    await session.execute(text(f"ANALYZE {RESOLVED}"))


# Lines the database refuses: an unknown council, a move that would rewrite past residence.
_REFUSED = f"""
SELECT line, CASE WHEN council_id IS NULL THEN 'council_not_found' ELSE 'valid_from_before_residence' END
FROM {RESOLVED}
WHERE council_id IS NULL OR (moves AND old_valid_from IS NOT NULL AND valid_from <= old_valid_from)
ORDER BY line LIMIT :cap
"""
_REFUSED_COUNT = f"""
SELECT count(*) FROM {RESOLVED}
WHERE council_id IS NULL OR (moves AND old_valid_from IS NOT NULL AND valid_from <= old_valid_from)
"""


async def refused(session: AsyncSession, cap: int) -> tuple[list[tuple[int, str]], int]:
    lines = [(int(r[0]), str(r[1])) for r in (await session.execute(text(_REFUSED), {"cap": cap})).all()]
    count = int((await session.execute(text(_REFUSED_COUNT))).scalar_one()) if lines else 0
    return lines, count


async def council_codes(session: AsyncSession) -> list[str]:
    return list((await session.execute(text(f"SELECT DISTINCT council_code FROM {STAGING}"))).scalars())


async def moved_from_council_codes(session: AsyncSession) -> list[str]:
    """The councils the resolved file moves known people out of (their open residence's)."""
    query = f"SELECT DISTINCT old_council_code FROM {RESOLVED} WHERE moves AND old_council_code IS NOT NULL"
    return list((await session.execute(text(query))).scalars())


@dataclass(frozen=True)
class Counts:
    rows: int
    created: int
    moved: int
    updated: int


async def counts(session: AsyncSession) -> Counts:
    row = (
        await session.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE moves),"
                f" count(*) FILTER (WHERE updates AND NOT moves) FROM {RESOLVED}"
            )
        )
    ).one()
    return Counts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def merge(session: AsyncSession) -> None:
    """Apply the file: new residents, moves (close the open residence, open the new one), updates."""
    await session.execute(
        text(
            "INSERT INTO residents (id, document_key_id, document_hash, roll_base, birth_date, status, status_since)"
            " SELECT resident_id, key_id, hash, roll_base, birth_date, coalesce(status, 'active'), valid_from"
            f" FROM {RESOLVED} WHERE is_new"
        )
    )
    await session.execute(
        text(
            f"UPDATE resident_residences rr SET valid_until = c.valid_from FROM {RESOLVED} c"
            " WHERE c.moves AND rr.id = c.old_residence_id"
        )
    )
    await session.execute(
        text(
            "INSERT INTO resident_residences (id, resident_id, council_id, valid_from)"
            f" SELECT gen_random_uuid(), resident_id, council_id, valid_from FROM {RESOLVED} WHERE is_new OR moves"
        )
    )
    await session.execute(
        text(
            "UPDATE residents r SET birth_date = c.birth_date, roll_base = coalesce(c.roll_base, r.roll_base),"
            " status = coalesce(c.status, r.status),"
            " status_since = CASE WHEN c.status IS NOT NULL AND c.status <> r.status THEN c.valid_from"
            "  ELSE r.status_since END"
            f" FROM {RESOLVED} c WHERE c.updates AND r.id = c.existing_id"
        )
    )


@dataclass(frozen=True)
class Change:
    resident_id: str
    is_new: bool
    moves: bool
    key_id: int
    before: dict[str, Any] | None
    after: dict[str, Any]


_STATE_KEYS = ("document_key_id", "birth_date", "status", "status_since", "council_code", "resident_since")


async def changes(session: AsyncSession, chunk: int) -> AsyncIterator[list[Change]]:
    """Every created or changed record with its state before and after, `chunk` at a time (keyset
    pages over the line, so that other statements may run between pages). Dates come as ISO
    text from SQL: a million rows would spend seconds in `date.isoformat`."""
    after_line = 0
    while True:
        page = (
            await session.execute(
                text(
                    "SELECT line, resident_id::text, is_new, moves,"
                    " coalesce(old_key_id, key_id), birth_date::text, coalesce(status, old_status, 'active'),"
                    " (CASE WHEN is_new OR (status IS NOT NULL AND status <> old_status) THEN valid_from"
                    "  ELSE old_status_since END)::text,"
                    " council_code, (CASE WHEN is_new OR moves THEN valid_from ELSE old_valid_from END)::text,"
                    " coalesce(old_key_id, key_id), old_birth_date::text, old_status, old_status_since::text,"
                    " old_council_code, old_valid_from::text"
                    f" FROM {RESOLVED} WHERE (is_new OR moves OR updates) AND line > :after ORDER BY line LIMIT :chunk"
                ),
                {"after": after_line, "chunk": chunk},
            )
        ).all()
        if not page:
            return
        after_line = int(page[-1][0])
        yield [
            Change(
                row[1],
                row[2],
                row[3],
                row[4],
                None if row[2] else dict(zip(_STATE_KEYS, row[10:16], strict=True)),
                dict(zip(_STATE_KEYS, row[4:10], strict=True)),
            )
            for row in page
        ]
