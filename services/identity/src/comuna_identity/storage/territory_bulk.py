"""Set-based reads and writes of the whole register, for bulk import and export.

An import is checked in full before anything is written (see `domain.register_import`); the
write is then a handful of statements whatever the file's size: the rows go into a temporary
staging table by COPY, and the merge into `territories` / `territory_versions` is done in SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage.territory_history import MAX_DEPTH


@dataclass(frozen=True, slots=True)
class Registered:
    """A unit already in the register: its latest version, and the first day it existed."""

    id: uuid.UUID
    code: str
    name: str
    kind: str
    parent_id: uuid.UUID | None
    status: str
    valid_from: date
    valid_until: date | None
    since: date


@dataclass(frozen=True, slots=True)
class StagedVersion:
    """One row to write: a new unit (`create`), or a new version of one from `valid_from`."""

    territory_id: uuid.UUID
    code: str
    create: bool
    # Amend the latest version in place (the change starts on that version's own first day).
    amend: bool
    valid_from: date
    name: str
    kind: str
    parent_id: uuid.UUID | None
    status: str


async def lock_register(session: AsyncSession) -> None:
    """One bulk writer at a time, and no single-unit change meanwhile (they lock rows of
    `territories`, which this mode conflicts with); readers are not blocked."""
    await session.execute(text("LOCK TABLE territories IN SHARE ROW EXCLUSIVE MODE"))


async def registered(session: AsyncSession) -> dict[str, Registered]:
    """Every unit by code, with its latest version (one scan)."""
    result = await session.execute(
        text(
            "SELECT DISTINCT ON (v.territory_id) t.id, t.code, v.name, v.kind, v.parent_id, v.status,"
            " v.valid_from, v.valid_until, min(v.valid_from) OVER (PARTITION BY v.territory_id) AS since"
            " FROM territories t JOIN territory_versions v ON v.territory_id = t.id"
            " ORDER BY v.territory_id, v.valid_from DESC"
        )
    )
    return {row.code: Registered(*row) for row in result}


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside its transaction (for COPY)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


_STAGING_COLUMNS = (
    "territory_id",
    "code",
    "is_new",
    "amend",
    "version_id",
    "valid_from",
    "name",
    "kind",
    "parent_id",
    "status",
)


async def write(session: AsyncSession, rows: Sequence[StagedVersion]) -> None:
    """Create the new units and their first versions, close the versions that changed and open
    their successors (or amend them in place): COPY into staging, then four statements."""
    if not rows:
        return
    await session.execute(
        text(
            "CREATE TEMPORARY TABLE territory_staging (territory_id uuid NOT NULL, code varchar(64) NOT NULL,"
            " is_new boolean NOT NULL, amend boolean NOT NULL, version_id uuid NOT NULL, valid_from date NOT NULL,"
            " name varchar(200) NOT NULL, kind varchar(32) NOT NULL, parent_id uuid, status varchar(16) NOT NULL)"
            " ON COMMIT DROP"
        )
    )
    driver = await _driver(session)
    await driver.copy_records_to_table(
        "territory_staging",
        records=[
            (
                r.territory_id,
                r.code,
                r.create,
                r.amend,
                uuid.uuid4(),
                r.valid_from,
                r.name,
                r.kind,
                r.parent_id,
                r.status,
            )
            for r in rows
        ],
        columns=_STAGING_COLUMNS,
    )
    await session.execute(
        text("INSERT INTO territories (id, code) SELECT territory_id, code FROM territory_staging WHERE is_new")
    )
    await session.execute(
        text(
            "UPDATE territory_versions v SET name = s.name, kind = s.kind, parent_id = s.parent_id, status = s.status"
            " FROM territory_staging s WHERE s.amend AND v.territory_id = s.territory_id"
            " AND v.valid_from = s.valid_from"
        )
    )
    await session.execute(
        text(
            "UPDATE territory_versions v SET valid_until = s.valid_from FROM territory_staging s"
            " WHERE NOT s.is_new AND NOT s.amend AND v.territory_id = s.territory_id AND v.valid_until IS NULL"
        )
    )
    await session.execute(
        text(
            "INSERT INTO territory_versions (id, territory_id, valid_from, valid_until, name, kind, parent_id, status)"
            " SELECT version_id, territory_id, valid_from, NULL, name, kind, parent_id, status"
            " FROM territory_staging WHERE NOT amend"
        )
    )


async def export_rows(session: AsyncSession, day: date) -> AsyncIterator[tuple[str, str, str, str, date, str]]:
    """(code, name, kind, parent_code, valid_from, status) of every unit in force on `day`,
    parents before children (so the file imports in one pass by any reader), streamed."""
    query = text(
        "WITH RECURSIVE units AS ("
        "  SELECT v.territory_id, t.code, v.name, v.kind, v.parent_id, v.valid_from, v.status"
        "  FROM territory_versions v JOIN territories t ON t.id = v.territory_id"
        "  WHERE v.valid_from <= :day AND (v.valid_until IS NULL OR :day < v.valid_until)"
        "), tree AS ("
        "  SELECT territory_id, 0 AS depth FROM units WHERE parent_id IS NULL"
        "  UNION ALL"
        "  SELECT u.territory_id, tree.depth + 1 FROM units u JOIN tree ON u.parent_id = tree.territory_id"
        "  WHERE tree.depth < :max_depth"
        ")"
        " SELECT u.code, u.name, u.kind, coalesce(p.code, '') AS parent_code, u.valid_from, u.status"
        " FROM units u JOIN tree ON tree.territory_id = u.territory_id"
        " LEFT JOIN territories p ON p.id = u.parent_id"
        " ORDER BY tree.depth, u.code"
    )
    result = await session.stream(query, {"day": day, "max_depth": MAX_DEPTH})
    async for row in result:
        yield (row.code, row.name, row.kind, row.parent_code, row.valid_from, row.status)
