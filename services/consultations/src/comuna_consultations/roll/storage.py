"""Queries of the roll slice: the load state, and entries written by binary COPY."""

from __future__ import annotations

import io
import struct
import uuid
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.storage.repository import roll_entries, roll_loads
from comuna_consultations.vocabulary import RollLoadStatus
from comuna_platform.voter_roll import ENTRY_BYTES, NO_LOGIN_KEY

_PENDING = (RollLoadStatus.REQUESTED, RollLoadStatus.LOADING)
# PostgreSQL's binary COPY framing (https://www.postgresql.org/docs/current/sql-copy.html).
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_NULL = struct.pack("!i", -1)
_LEN8, _LEN16, _LEN32 = (struct.pack("!i", n) for n in (8, 16, 32))
_COLUMNS = ["consultation_id", "voter_key", "seq", "login_key", "commune_id", "council_id"]


async def insert_load(session: AsyncSession, row: dict[str, Any]) -> bool:
    written = await session.execute(
        pg_insert(roll_loads).values(row).on_conflict_do_nothing().returning(roll_loads.c.consultation_id)
    )
    return written.first() is not None


async def pending_loads(session: AsyncSession) -> list[uuid.UUID]:
    query = (
        select(roll_loads.c.consultation_id)
        .where(roll_loads.c.status.in_([s.value for s in _PENDING]))
        .order_by(roll_loads.c.requested_at)
    )
    return list((await session.execute(query)).scalars())


async def try_lock_load(conn: AsyncConnection, consultation_id: uuid.UUID) -> bool:
    """A session advisory lock on the load (held until the connection closes); False if taken."""
    lock = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
    taken = bool((await conn.execute(lock, {"key": f"roll-load:{consultation_id}"})).scalar_one())
    await conn.commit()
    return taken


async def unlock_load(conn: AsyncConnection, consultation_id: uuid.UUID) -> None:
    """Release the lock of `try_lock_load` (the connection goes back to the pool: it must not keep it)."""
    unlock = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
    await conn.execute(unlock, {"key": f"roll-load:{consultation_id}"})
    await conn.commit()


async def set_load(session: AsyncSession, consultation_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(roll_loads).where(roll_loads.c.consultation_id == consultation_id).values(**values))


def copy_rows(consultation_id: uuid.UUID, first_seq: int, packed: bytes) -> bytes:
    """Binary COPY rows of `roll_entries` for packed entries (96 bytes each, seq order). The
    fields are already in PostgreSQL's binary form (bytea and uuid are their raw bytes), so
    each row is sliced and framed, never decoded into Python objects."""
    prefix = b"\x00\x06" + _LEN16 + consultation_id.bytes + _LEN32
    rows = []
    seq = first_seq
    for at in range(0, len(packed), ENTRY_BYTES):
        login = packed[at + 32 : at + 64]
        rows.append(
            b"".join(
                (
                    prefix,
                    packed[at : at + 32],
                    _LEN8,
                    seq.to_bytes(8, "big"),
                    _NULL if login == NO_LOGIN_KEY else _LEN32 + login,
                    _LEN16,
                    packed[at + 64 : at + 80],
                    _LEN16,
                    packed[at + 80 : at + 96],
                )
            )
        )
        seq += 1
    return b"".join(rows)


async def store_chunk(session: AsyncSession, consultation_id: uuid.UUID, first_seq: int, packed: bytes) -> bool:
    """COPY a chunk and advance `loaded_seq` in the caller's transaction; False (nothing to
    commit) if `loaded_seq` is not `first_seq - 1` any more, i.e. someone else stored it."""
    count = len(packed) // ENTRY_BYTES
    advanced = await session.execute(
        update(roll_loads)
        .where(roll_loads.c.consultation_id == consultation_id, roll_loads.c.loaded_seq == first_seq - 1)
        .values(loaded_seq=first_seq + count - 1)
        .returning(roll_loads.c.loaded_seq)
    )
    if advanced.first() is None:
        return False
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    payload = _COPY_HEADER + copy_rows(consultation_id, first_seq, packed) + _COPY_TRAILER
    await raw.driver_connection.copy_to_table(  # type: ignore[union-attr]
        "roll_entries", source=io.BytesIO(payload), columns=_COLUMNS, format="binary"
    )
    return True


async def count_entries(session: AsyncSession, consultation_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(roll_entries).where(roll_entries.c.consultation_id == consultation_id)
    return int((await session.execute(query)).scalar_one())
