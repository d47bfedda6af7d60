"""Queries over identity's tables. No business rules here, only data access."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage.models import Resident, Territory
from comuna_identity.vocabulary import COMMUNE_KINDS


async def territory_by_code(session: AsyncSession, code: str) -> Territory | None:
    return (await session.execute(select(Territory).where(Territory.code == code))).scalar_one_or_none()


async def territory_by_id(session: AsyncSession, territory_id: uuid.UUID) -> Territory | None:
    return await session.get(Territory, territory_id)


async def ancestors_of(session: AsyncSession, territory: Territory) -> list[Territory]:
    """From the root down to the parent, found by the code's dotted prefixes."""
    parts = territory.code.split(".")
    prefixes = [".".join(parts[:i]) for i in range(1, len(parts))]
    if not prefixes:
        return []
    rows = (await session.execute(select(Territory).where(Territory.code.in_(prefixes)))).scalars().all()
    return sorted(rows, key=lambda t: len(t.code))


async def children_of(
    session: AsyncSession, parent_id: uuid.UUID | None, *, after_code: str, limit: int
) -> Sequence[Territory]:
    query = select(Territory).where(Territory.code > after_code).order_by(Territory.code).limit(limit)
    query = query.where(Territory.parent_id == parent_id if parent_id else Territory.parent_id.is_(None))
    return (await session.execute(query)).scalars().all()


async def communes_under(session: AsyncSession, under_code: str, *, after_code: str, limit: int) -> Sequence[Territory]:
    query = (
        select(Territory)
        .where(Territory.kind.in_(COMMUNE_KINDS), Territory.code > after_code)
        .order_by(Territory.code)
        .limit(limit)
    )
    if under_code:
        query = query.where(Territory.code.startswith(under_code + ".", autoescape=True))
    return (await session.execute(query)).scalars().all()


async def resident_by_hash(session: AsyncSession, national_id_hash: bytes) -> Resident | None:
    return (
        await session.execute(select(Resident).where(Resident.national_id_hash == national_id_hash))
    ).scalar_one_or_none()
