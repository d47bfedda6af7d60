"""Queries over identity's tables. No business rules here, only data access."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage import territory_history
from comuna_identity.storage.models import (
    EnrolmentCode,
    ResidentAccount,
    RoleAssignment,
    Territory,
    TerritoryVersion,
)
from comuna_identity.storage.territory_history import TerritoryAt


async def territory_by_code(session: AsyncSession, code: str, day: date | None = None) -> TerritoryAt | None:
    """The unit `code` as it stands on `day` (today when None)."""
    return await territory_history.by_code(session, code, day or _today())


async def territory_by_id(
    session: AsyncSession, territory_id: uuid.UUID, day: date | None = None
) -> TerritoryAt | None:
    return await territory_history.by_id(session, territory_id, day or _today())


def _today() -> date:
    return datetime.now(UTC).date()


def _with_territory(day: date) -> Select[*tuple[Any, ...]]:
    """Assignments joined with their territory's version in force on `day`."""
    return (
        select(RoleAssignment, *territory_history.COLUMNS)
        .join(Territory, Territory.id == RoleAssignment.territory_id)
        .join(TerritoryVersion, TerritoryVersion.territory_id == Territory.id)
        .where(territory_history.in_force(day))
    )


def _pair(row: Any) -> tuple[RoleAssignment, TerritoryAt]:
    return row[0], TerritoryAt(*row[1:])


async def live_assignment(
    session: AsyncSession,
    *,
    subject: str,
    role: str,
    territory_id: uuid.UUID,
    consultation_id: uuid.UUID | None,
    table_code: str | None,
) -> RoleAssignment | None:
    """The not-revoked assignment with exactly these terms (what `uq_role_assignments_live` keeps unique)."""
    query = select(RoleAssignment).where(
        RoleAssignment.subject == subject,
        RoleAssignment.role == role,
        RoleAssignment.territory_id == territory_id,
        RoleAssignment.revoked_at.is_(None),
        RoleAssignment.consultation_id.is_(None)
        if consultation_id is None
        else RoleAssignment.consultation_id == consultation_id,
        RoleAssignment.table_code.is_(None) if table_code is None else RoleAssignment.table_code == table_code,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def assignment_with_territory(
    session: AsyncSession, assignment_id: uuid.UUID, *, for_update: bool = False
) -> tuple[RoleAssignment, TerritoryAt] | None:
    query = _with_territory(_today()).where(RoleAssignment.id == assignment_id)
    if for_update:
        query = query.with_for_update(of=RoleAssignment)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else _pair(row)


def _inside(codes: Sequence[str], day: date) -> ColumnElement[bool]:
    """Territories at or under any of `codes`, by the parent links in force on `day`."""
    roots = select(Territory.id).where(Territory.code.in_(list(codes)))
    down = territory_history.descendants_of_selectable(roots, day)
    return RoleAssignment.territory_id.in_(down)


async def assignments_page(
    session: AsyncSession,
    *,
    visible_under: Sequence[str] | None,
    also_subject: str | None,
    subject: str | None,
    role: str | None,
    under_code: str | None,
    after_id: uuid.UUID | None,
    limit: int,
) -> Sequence[tuple[RoleAssignment, TerritoryAt]]:
    """Assignments (with their territory as it stands today) in id order. `visible_under=None`
    means everywhere; otherwise only inside those territories, plus `also_subject`'s own."""
    today = _today()
    query = _with_territory(today)
    if visible_under is not None:
        visible = [_inside(visible_under, today)] if visible_under else []
        if also_subject is not None:
            visible.append(RoleAssignment.subject == also_subject)
        query = query.where(or_(*visible) if visible else false())
    if subject is not None:
        query = query.where(RoleAssignment.subject == subject)
    if role is not None:
        query = query.where(RoleAssignment.role == role)
    if under_code is not None:
        query = query.where(_inside([under_code], today))
    if after_id is not None:
        query = query.where(RoleAssignment.id > after_id)
    rows = (await session.execute(query.order_by(RoleAssignment.id).limit(limit))).all()
    return [_pair(row) for row in rows]


async def assignments_in_force(
    session: AsyncSession, subject: str, now: datetime
) -> Sequence[tuple[RoleAssignment, TerritoryAt]]:
    """valid_from <= now < valid_until (or open-ended), not revoked; one indexed query. The
    territory as it stands on `now`'s day (an assignment at a unit not in force then drops out)."""
    query = (
        _with_territory(now.date())
        .where(
            RoleAssignment.subject == subject,
            RoleAssignment.revoked_at.is_(None),
            RoleAssignment.valid_from <= now,
            or_(RoleAssignment.valid_until.is_(None), RoleAssignment.valid_until > now),
        )
        .order_by(RoleAssignment.granted_at, RoleAssignment.id)
    )
    return [_pair(row) for row in (await session.execute(query)).all()]


async def account_of(session: AsyncSession, subject: str) -> ResidentAccount | None:
    return await session.get(ResidentAccount, subject)


async def account_of_resident(session: AsyncSession, resident_id: uuid.UUID) -> ResidentAccount | None:
    query = select(ResidentAccount).where(ResidentAccount.resident_id == resident_id)
    return (await session.execute(query)).scalar_one_or_none()


def _live_code() -> ColumnElement[bool]:
    return and_(EnrolmentCode.redeemed_at.is_(None), EnrolmentCode.burnt_at.is_(None))


async def live_code_by_hash(session: AsyncSession, code_hash: bytes) -> EnrolmentCode | None:
    query = select(EnrolmentCode).where(EnrolmentCode.code_hash == code_hash, _live_code()).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def live_code_of_resident(session: AsyncSession, resident_id: uuid.UUID) -> EnrolmentCode | None:
    query = select(EnrolmentCode).where(EnrolmentCode.resident_id == resident_id, _live_code()).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def burn_live_codes(session: AsyncSession, resident_id: uuid.UUID, now: datetime) -> Sequence[EnrolmentCode]:
    """Burn the resident's live codes; returns them (burnt), for the audit log."""
    burnt = await session.execute(
        update(EnrolmentCode)
        .where(EnrolmentCode.resident_id == resident_id, _live_code())
        .values(burnt_at=now)
        .returning(EnrolmentCode)
    )
    return burnt.scalars().all()
