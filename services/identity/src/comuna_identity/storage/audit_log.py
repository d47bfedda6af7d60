"""Reads and appends of `audit_log`; the hashing and the chain rules live in `domain.audit`.

Appends are serialised by a transaction-level advisory lock: the writer holding it reads the
head, chains its entries in Python and COPYs them through the session's own connection, so its
rows commit or roll back with the rest of its transaction, and the next writer (blocked on the
lock until then) reads the head that transaction left. The primary key on `seq` is the last
line of defence: a writer that somehow read a stale head fails instead of forking the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage.models import AuditLogEntry

# The advisory lock every append takes (a fixed 64-bit key derived from the table's name).
APPEND_LOCK = int.from_bytes(hashlib.sha256(b"comuna_identity.audit_log").digest()[:8], "big", signed=True)

COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "object_kind",
    "object_id",
    "before_hash",
    "after_hash",
    "prev_hash",
    "entry_hash",
)

_WALK = (
    "SELECT seq, at, actor, action, object_kind, object_id, before_hash, after_hash, prev_hash, entry_hash "
    "FROM audit_log ORDER BY seq"
)


@dataclass(frozen=True)
class Head:
    """The last entry: its seq (0 for an empty log), hash (the genesis hash then) and time."""

    seq: int
    entry_hash: bytes
    at: datetime | None


@dataclass(frozen=True)
class LockedHead:
    head: Head
    # The database's clock once the lock is held: the `at` of the entries being appended.
    now: datetime


async def lock_and_read_head(session: AsyncSession, genesis: bytes) -> LockedHead:
    """Take the append lock (held until the transaction ends), then read the head.

    Two statements on purpose: under READ COMMITTED each statement reads a snapshot taken when
    it starts, so the head must be read by a statement that starts after the lock is held.
    """
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
    row = (
        await session.execute(
            text(
                "SELECT h.seq, h.entry_hash, h.at, clock_timestamp() AS now FROM (SELECT 1) AS one "
                "LEFT JOIN LATERAL (SELECT seq, entry_hash, at FROM audit_log ORDER BY seq DESC LIMIT 1) AS h ON true"
            )
        )
    ).one()
    if row.seq is None:
        return LockedHead(Head(0, genesis, None), row.now)
    return LockedHead(Head(int(row.seq), bytes(row.entry_hash), row.at), row.now)


async def copy_rows(session: AsyncSession, rows: Iterable[Sequence[Any]]) -> None:
    """COPY `rows` (tuples in `COLUMNS` order) into audit_log on the session's connection, in
    its transaction. `rows` may be a generator: it is consumed while the COPY streams."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = cast(asyncpg.Connection, raw.driver_connection)
    await driver.copy_records_to_table("audit_log", records=rows, columns=list(COLUMNS))


async def head(session: AsyncSession, genesis: bytes) -> Head:
    """The head as committed now (no lock: a reader never waits for a writer)."""
    row = (
        await session.execute(
            select(AuditLogEntry.seq, AuditLogEntry.entry_hash, AuditLogEntry.at)
            .order_by(AuditLogEntry.seq.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return Head(0, genesis, None)
    return Head(int(row.seq), bytes(row.entry_hash), row.at)


async def entries_after(session: AsyncSession, after_seq: int, limit: int) -> Sequence[AuditLogEntry]:
    query = select(AuditLogEntry).where(AuditLogEntry.seq > after_seq).order_by(AuditLogEntry.seq).limit(limit)
    return (await session.execute(query)).scalars().all()


async def walk(connection: asyncpg.Connection, *, batch: int = 10_000) -> AsyncIterator[asyncpg.Record]:
    """Every entry in seq order through a server-side cursor (`batch` rows in memory at a time),
    in one REPEATABLE READ, read-only transaction: one consistent snapshot of the whole log."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        async for row in connection.cursor(_WALK, prefetch=batch):
            yield row
