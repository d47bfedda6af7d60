"""Queries of the voting slice: the snapshot's reads, voters' roll entries (in batches), receipts.

The writes of the ballot path are in `voting.group_commit` and `storage.participations`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, LargeBinary, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.storage.models import RecordReceipt, VotingTable
from comuna_consultations.storage.repository import (
    candidates,
    communes,
    roll_entries,
    roll_loads,
)
from comuna_consultations.vocabulary import RollLoadStatus

Connection = AsyncSession | AsyncConnection


@dataclass(frozen=True, slots=True)
class RollKeys:
    voter_key: bytes  # t_c: document -> entry key
    login_key: bytes | None  # L_c: Keycloak subject -> login key


@dataclass(frozen=True, slots=True)
class TableRef:
    id: uuid.UUID
    code: str
    commune_id: uuid.UUID
    kind: str


async def commune_codes(session: AsyncSession, consultation_id: uuid.UUID) -> dict[uuid.UUID, str]:
    query = select(communes.c.commune_id, communes.c.code).where(communes.c.consultation_id == consultation_id)
    return {row.commune_id: row.code for row in await session.execute(query)}


async def candidate_communes(session: AsyncSession, consultation_id: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
    """candidate id -> commune id, for the ballot path's in-memory check."""
    query = select(candidates.c.id, candidates.c.commune_id).where(candidates.c.consultation_id == consultation_id)
    return {row.id: row.commune_id for row in await session.execute(query)}


async def verified_roll_keys(session: AsyncSession, consultation_id: uuid.UUID) -> RollKeys | None:
    query = select(roll_loads.c.voter_key, roll_loads.c.login_key).where(
        roll_loads.c.consultation_id == consultation_id, roll_loads.c.status == RollLoadStatus.VERIFIED.value
    )
    row = (await session.execute(query)).first()
    if row is None or row.voter_key is None:
        return None
    return RollKeys(bytes(row.voter_key), bytes(row.login_key) if row.login_key is not None else None)


_BYTEA_ARRAY: Any = ARRAY(LargeBinary())


def _keys(keys: Sequence[bytes]) -> BindParameter[list[bytes]]:
    # One array parameter (`= ANY($2)`): one prepared statement whatever the batch's size.
    return bindparam("keys", list(keys), type_=_BYTEA_ARRAY)


async def entry_communes(
    conn: Connection, consultation_id: uuid.UUID, entry_keys: Sequence[bytes]
) -> dict[bytes, uuid.UUID]:
    """entry key -> commune of those keys on the roll (the roll's primary key); absent: not on it."""
    query = select(roll_entries.c.voter_key, roll_entries.c.commune_id).where(
        roll_entries.c.consultation_id == consultation_id, roll_entries.c.voter_key == any_(_keys(entry_keys))
    )
    return {bytes(row.voter_key): row.commune_id for row in await conn.execute(query)}


async def entries_by_login(
    conn: Connection, consultation_id: uuid.UUID, login_keys: Sequence[bytes]
) -> dict[bytes, tuple[bytes, uuid.UUID]]:
    """login key -> (entry key, commune) of signed-in residents on the roll (ix_roll_entries_login)."""
    query = select(roll_entries.c.login_key, roll_entries.c.voter_key, roll_entries.c.commune_id).where(
        roll_entries.c.consultation_id == consultation_id, roll_entries.c.login_key == any_(_keys(login_keys))
    )
    return {bytes(row.login_key): (bytes(row.voter_key), row.commune_id) for row in await conn.execute(query)}


async def tables(session: AsyncSession, consultation_id: uuid.UUID) -> dict[str, TableRef]:
    """The consultation's tables by code, for the ballot path's in-memory check."""
    query = select(VotingTable.id, VotingTable.code, VotingTable.commune_id, VotingTable.kind).where(
        VotingTable.consultation_id == consultation_id
    )
    return {row.code: TableRef(row.id, row.code, row.commune_id, row.kind) for row in await session.execute(query)}


async def receipt_entry(session: AsyncSession, consultation_id: uuid.UUID, commitment: str) -> int | None:
    """The index of the record entry holding this receipt commitment, if any."""
    query = select(RecordReceipt.entry_index).where(
        RecordReceipt.consultation_id == consultation_id, RecordReceipt.commitment == commitment
    )
    return (await session.execute(query)).scalar_one_or_none()
