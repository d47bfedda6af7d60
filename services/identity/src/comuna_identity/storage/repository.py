"""Queries over identity's tables. No business rules here, only data access."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage.models import EnrolmentCode, Resident, ResidentAccount, RoleAssignment, Territory
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
) -> tuple[RoleAssignment, Territory] | None:
    query = (
        select(RoleAssignment, Territory)
        .join(Territory, Territory.id == RoleAssignment.territory_id)
        .where(RoleAssignment.id == assignment_id)
    )
    if for_update:
        query = query.with_for_update(of=RoleAssignment)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], row[1])


def _inside(code: str) -> ColumnElement[bool]:
    """Territories at or under `code` (dotted-path prefix, `VE.1` never matching `VE.10`)."""
    return or_(Territory.code == code, Territory.code.startswith(code + ".", autoescape=True))


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
) -> Sequence[tuple[RoleAssignment, Territory]]:
    """Assignments (with their territory) in id order. `visible_under=None` means everywhere;
    otherwise only inside those territories, plus `also_subject`'s own."""
    query = select(RoleAssignment, Territory).join(Territory, Territory.id == RoleAssignment.territory_id)
    if visible_under is not None:
        visible = [_inside(code) for code in visible_under]
        if also_subject is not None:
            visible.append(RoleAssignment.subject == also_subject)
        query = query.where(or_(*visible) if visible else false())
    if subject is not None:
        query = query.where(RoleAssignment.subject == subject)
    if role is not None:
        query = query.where(RoleAssignment.role == role)
    if under_code is not None:
        query = query.where(_inside(under_code))
    if after_id is not None:
        query = query.where(RoleAssignment.id > after_id)
    rows = (await session.execute(query.order_by(RoleAssignment.id).limit(limit))).all()
    return [(row[0], row[1]) for row in rows]


async def assignments_in_force(
    session: AsyncSession, subject: str, now: datetime
) -> Sequence[tuple[RoleAssignment, Territory]]:
    """valid_from <= now < valid_until (or open-ended), not revoked; one indexed query."""
    query = (
        select(RoleAssignment, Territory)
        .join(Territory, Territory.id == RoleAssignment.territory_id)
        .where(
            RoleAssignment.subject == subject,
            RoleAssignment.revoked_at.is_(None),
            RoleAssignment.valid_from <= now,
            or_(RoleAssignment.valid_until.is_(None), RoleAssignment.valid_until > now),
        )
        .order_by(RoleAssignment.granted_at, RoleAssignment.id)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


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
