"""Queries over the census: key generations, residents by their hash layers, residences.

No business rules here, only data access.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage import territory_history
from comuna_identity.storage.models import CensusKey, Resident, ResidentResidence
from comuna_identity.storage.territory_history import TerritoryAt


async def census_keys(session: AsyncSession, *, share_lock: bool = False) -> Sequence[CensusKey]:
    """The generations in use, oldest first; `share_lock` holds them against a new activation."""
    query = select(CensusKey).order_by(CensusKey.key_id)
    if share_lock:
        query = query.with_for_update(read=True)
    return (await session.execute(query)).scalars().all()


async def add_census_key(session: AsyncSession, key_id: int, fingerprint: bytes) -> None:
    await session.execute(pg_insert(CensusKey).values(key_id=key_id, fingerprint=fingerprint).on_conflict_do_nothing())


async def lock_newest_census_key(session: AsyncSession) -> CensusKey | None:
    """The newest generation, locked against writers (who hold it FOR SHARE) until commit."""
    query = select(CensusKey).order_by(CensusKey.key_id.desc()).limit(1).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def resident_by_layers(session: AsyncSession, layers: Sequence[tuple[int, bytes]]) -> Resident | None:
    """The resident whose (key id, hash) is one of `layers` (one person: at most one matches)."""
    query = select(Resident).where(tuple_(Resident.document_key_id, Resident.document_hash).in_(list(layers)))
    return (await session.execute(query)).scalar_one_or_none()


async def residents_with_layers(
    session: AsyncSession, layers: Sequence[tuple[int, bytes]]
) -> list[tuple[uuid.UUID, int, bytes]]:
    """(id, key id, hash) of every resident whose hash is one of `layers`."""
    query = select(Resident.id, Resident.document_key_id, Resident.document_hash).where(
        tuple_(Resident.document_key_id, Resident.document_hash).in_(list(layers))
    )
    return [(row.id, row.document_key_id, row.document_hash) for row in await session.execute(query)]


async def residence_on(session: AsyncSession, resident_id: uuid.UUID, day: date) -> ResidentResidence | None:
    query = select(ResidentResidence).where(
        ResidentResidence.resident_id == resident_id,
        ResidentResidence.valid_from <= day,
        or_(ResidentResidence.valid_until.is_(None), ResidentResidence.valid_until > day),
    )
    return (await session.execute(query)).scalar_one_or_none()


async def latest_residence(
    session: AsyncSession, resident_id: uuid.UUID, *, for_update: bool = False
) -> ResidentResidence | None:
    query = (
        select(ResidentResidence)
        .where(ResidentResidence.resident_id == resident_id)
        .order_by(ResidentResidence.valid_from.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def council_of_resident(session: AsyncSession, resident_id: uuid.UUID, day: date) -> TerritoryAt | None:
    """The council the resident lives in on `day` (else their latest one), as it stands on `day`;
    None when that council has no version in force then."""
    residence = await residence_on(session, resident_id, day) or await latest_residence(session, resident_id)
    return None if residence is None else await territory_history.by_id(session, residence.council_id, day)


async def residents_per_generation(session: AsyncSession) -> dict[int, int]:
    rows = await session.execute(select(Resident.document_key_id, func.count()).group_by(Resident.document_key_id))
    return {int(key_id): int(count) for key_id, count in rows.all()}


async def generation_has_residents(session: AsyncSession, key_id: int) -> bool:
    query = select(Resident.id).where(Resident.document_key_id == key_id).limit(1)
    return (await session.execute(query)).first() is not None


async def claim_for_rekey(session: AsyncSession, key_id: int, limit: int) -> list[tuple[uuid.UUID, bytes]]:
    """Up to `limit` records still under `key_id`, locked; rows a writer holds are left for later."""
    query = (
        select(Resident.id, Resident.document_hash)
        .where(Resident.document_key_id == key_id)
        .order_by(Resident.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def rekey(session: AsyncSession, to_key_id: int, rows: Sequence[tuple[uuid.UUID, bytes]]) -> int:
    """Move the claimed records to `to_key_id` with their wrapped hashes, in one statement."""
    result = await session.execute(
        text(
            "UPDATE residents r SET document_key_id = :to_key, document_hash = v.hash"
            " FROM unnest(CAST(:ids AS uuid[]), CAST(:hashes AS bytea[])) AS v(id, hash) WHERE r.id = v.id"
        ),
        {"to_key": to_key_id, "ids": [row[0] for row in rows], "hashes": [row[1] for row in rows]},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
