"""Queries over the projects tables. No business rules here, only data access."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_projects.storage.models import Milestone, Project


async def project_by_id(session: AsyncSession, project_id: uuid.UUID, *, for_update: bool = False) -> Project | None:
    query = select(Project).where(Project.id == project_id)
    if for_update:
        # Row lock: every state change of a project or its milestones takes it first, so
        # concurrent verifications and fundings of one project run one after the other.
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def project_by_allocation(session: AsyncSession, allocation_id: uuid.UUID) -> Project | None:
    return (await session.execute(select(Project).where(Project.allocation_id == allocation_id))).scalar_one_or_none()


async def insert_project_if_absent(session: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Insert a project unless one exists for its allocation (or id); True if inserted.

    ON CONFLICT DO NOTHING rather than check-then-insert: two copies of an allocation event
    handled at once (by two replicas) must not both pass a check and then one of them fail.
    """
    inserted = await session.execute(insert(Project).values(**values).on_conflict_do_nothing().returning(Project.id))
    return inserted.first() is not None


async def insert_milestones(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    await session.execute(insert(Milestone), list(rows))


async def milestones_of(session: AsyncSession, project_id: uuid.UUID) -> list[Milestone]:
    rows = await session.execute(
        select(Milestone).where(Milestone.project_id == project_id).order_by(Milestone.sequence)
    )
    return list(rows.scalars().all())


async def milestones_of_many(
    session: AsyncSession, project_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Milestone]]:
    if not project_ids:
        return {}
    rows = await session.execute(
        select(Milestone)
        .where(Milestone.project_id.in_(project_ids))
        .order_by(Milestone.project_id, Milestone.sequence)
    )
    grouped: dict[uuid.UUID, list[Milestone]] = {pid: [] for pid in project_ids}
    for milestone in rows.scalars():
        grouped[milestone.project_id].append(milestone)
    return grouped


async def project_id_of_milestone(session: AsyncSession, milestone_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(Milestone.project_id).where(Milestone.id == milestone_id))


async def milestone_by_id(session: AsyncSession, milestone_id: uuid.UUID) -> Milestone | None:
    return await session.get(Milestone, milestone_id)


async def milestone_with_disbursement(session: AsyncSession, disbursement_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(Milestone.id).where(Milestone.disbursement_id == disbursement_id))


async def list_projects(
    session: AsyncSession,
    *,
    consultation_id: uuid.UUID | None,
    commune_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[Project]:
    """Projects matching the filters, in id order (a stable keyset for paging)."""
    query = select(Project).order_by(Project.id).limit(limit)
    if consultation_id is not None:
        query = query.where(Project.consultation_id == consultation_id)
    if commune_id is not None:
        query = query.where(Project.commune_id == commune_id)
    if after is not None:
        query = query.where(Project.id > after)
    return list((await session.execute(query)).scalars().all())
