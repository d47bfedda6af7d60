"""Reads of the territory register as of a day: the version of each unit in force then.

A version is in force on day d when `valid_from <= d AND (valid_until IS NULL OR d < valid_until)`.
Ancestors and descendants follow the parent links in force on that day (recursive CTEs), never
the codes: a code is a human identifier and says nothing about where a unit sits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage.models import Territory, TerritoryVersion
from comuna_identity.vocabulary import COMMUNE_KINDS, TerritoryKind

# Deep enough for country > state > municipality > parish > commune > council, with room; a
# guard against a cycle that slipped past the writers (the recursion stops instead of looping).
MAX_DEPTH = 16


def in_force(day: date, version: type[TerritoryVersion] = TerritoryVersion) -> ColumnElement[bool]:
    """The versions in force on `day` (a clause on TerritoryVersion, or an alias of it)."""
    return and_(version.valid_from <= day, or_(version.valid_until.is_(None), version.valid_until > day))


@dataclass(frozen=True, slots=True)
class TerritoryAt:
    """A unit as it stood on one day: its identity joined with the version in force."""

    id: uuid.UUID
    code: str
    name: str
    kind: str
    parent_id: uuid.UUID | None
    status: str
    valid_from: date
    valid_until: date | None


COLUMNS = (
    Territory.id,
    Territory.code,
    TerritoryVersion.name,
    TerritoryVersion.kind,
    TerritoryVersion.parent_id,
    TerritoryVersion.status,
    TerritoryVersion.valid_from,
    TerritoryVersion.valid_until,
)


def _at(row: Any) -> TerritoryAt:
    return TerritoryAt(*row)


def units_at(day: date) -> Select[*tuple[Any, ...]]:
    """Every unit with its version in force on `day` (units not yet created or between versions drop out)."""
    return select(*COLUMNS).join(TerritoryVersion, TerritoryVersion.territory_id == Territory.id).where(in_force(day))


async def by_code(session: AsyncSession, code: str, day: date) -> TerritoryAt | None:
    row = (await session.execute(units_at(day).where(Territory.code == code))).one_or_none()
    return None if row is None else _at(row)


async def by_id(session: AsyncSession, territory_id: uuid.UUID, day: date) -> TerritoryAt | None:
    row = (await session.execute(units_at(day).where(Territory.id == territory_id))).one_or_none()
    return None if row is None else _at(row)


async def identity_of(session: AsyncSession, code: str) -> Territory | None:
    """The unit with `code` whatever its versions (for writers)."""
    return (await session.execute(select(Territory).where(Territory.code == code))).scalar_one_or_none()


async def lineage(session: AsyncSession, territory_id: uuid.UUID, day: date) -> list[TerritoryAt]:
    """From the root down to the unit itself, by the parent links in force on `day`; [] when the
    unit has no version in force then."""
    up = (
        select(TerritoryVersion.territory_id, TerritoryVersion.parent_id, literal(0).label("depth"))
        .where(TerritoryVersion.territory_id == territory_id, in_force(day))
        .cte("up", recursive=True)
    )
    step = TerritoryVersion.__table__.alias("step")
    up = up.union_all(
        select(step.c.territory_id, step.c.parent_id, (up.c.depth + 1).label("depth")).where(
            step.c.territory_id == up.c.parent_id,
            step.c.valid_from <= day,
            or_(step.c.valid_until.is_(None), step.c.valid_until > day),
            up.c.depth < MAX_DEPTH,
        )
    )
    query = units_at(day).join(up, up.c.territory_id == Territory.id).order_by(up.c.depth.desc())
    return [_at(row) for row in (await session.execute(query)).all()]


def descendants(root_ids: Sequence[uuid.UUID], day: date) -> Select[tuple[uuid.UUID]]:
    """The ids of `root_ids` and every unit under them on `day` (a selectable, for IN clauses)."""
    return descendants_of_selectable(list(root_ids), day)


def descendants_of_selectable(roots: Any, day: date) -> Select[tuple[uuid.UUID]]:
    """Like `descendants`, the roots given as ids or as a subquery of ids."""
    down = (
        select(Territory.id.label("territory_id"), literal(0).label("depth"))
        .where(Territory.id.in_(roots))
        .cte("down", recursive=True)
    )
    step = TerritoryVersion.__table__.alias("step_down")
    down = down.union_all(
        select(step.c.territory_id, (down.c.depth + 1).label("depth")).where(
            step.c.parent_id == down.c.territory_id,
            step.c.valid_from <= day,
            or_(step.c.valid_until.is_(None), step.c.valid_until > day),
            down.c.depth < MAX_DEPTH,
        )
    )
    return select(down.c.territory_id)


async def children(
    session: AsyncSession, parent_id: uuid.UUID | None, day: date, *, after_code: str, limit: int
) -> list[TerritoryAt]:
    query = units_at(day).where(Territory.code > after_code).order_by(Territory.code).limit(limit)
    if parent_id is None:
        query = query.where(TerritoryVersion.parent_id.is_(None))
    else:
        query = query.where(TerritoryVersion.parent_id == parent_id)
    return [_at(row) for row in (await session.execute(query)).all()]


async def communes(
    session: AsyncSession, under_id: uuid.UUID | None, day: date, *, after_code: str, limit: int
) -> list[TerritoryAt]:
    """Communes and communal circuits in force on `day` (under `under_id` when given), in code order."""
    query = (
        units_at(day)
        .where(TerritoryVersion.kind.in_(COMMUNE_KINDS), Territory.code > after_code)
        .order_by(Territory.code)
        .limit(limit)
    )
    if under_id is not None:
        query = query.where(Territory.id.in_(descendants([under_id], day)))
    return [_at(row) for row in (await session.execute(query)).all()]


def council_communes(day: date) -> Select[*tuple[Any, ...]]:
    """(council_id, commune_id) of every communal council in force on `day`: its parent then,
    a commune or a communal circuit."""
    parent = TerritoryVersion.__table__.alias("commune_version")
    return (
        select(TerritoryVersion.territory_id.label("council_id"), TerritoryVersion.parent_id.label("commune_id"))
        .join(parent, parent.c.territory_id == TerritoryVersion.parent_id)
        .where(
            TerritoryVersion.kind == TerritoryKind.COMMUNAL_COUNCIL,
            in_force(day),
            parent.c.valid_from <= day,
            or_(parent.c.valid_until.is_(None), parent.c.valid_until > day),
            parent.c.kind.in_(COMMUNE_KINDS),
        )
    )


async def versions_of(session: AsyncSession, territory_id: uuid.UUID) -> Sequence[TerritoryVersion]:
    query = (
        select(TerritoryVersion)
        .where(TerritoryVersion.territory_id == territory_id)
        .order_by(TerritoryVersion.valid_from)
    )
    return (await session.execute(query)).scalars().all()
