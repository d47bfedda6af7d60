"""REST transport of the projects service: public reads and milestone verification."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_platform.auth.fastapi import require_roles
from comuna_platform.auth.principal import Principal
from comuna_platform.errors import NotFound
from comuna_platform.http.deps import RuntimeDep
from comuna_projects.api.schemas import ProjectDetail, ProjectPage, VerificationOut, VerifyMilestoneIn
from comuna_projects.api.views import milestone_out, project_detail, project_summary
from comuna_projects.domain import projects
from comuna_projects.storage import repository
from comuna_projects.storage.models import Project

router = APIRouter(prefix="/v1", tags=["projects"])

Overseer = Annotated[Principal, require_roles("overseer", "operator")]


@router.get(
    "/projects",
    response_model=ProjectPage,
    summary="List projects, optionally of one consultation and/or commune (public)",
)
async def list_projects(
    runtime: RuntimeDep,
    consultation_id: uuid.UUID | None = None,
    commune_id: uuid.UUID | None = None,
    after: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ProjectPage:
    async with runtime.db.transaction() as session:
        rows = await repository.list_projects(
            session, consultation_id=consultation_id, commune_id=commune_id, after=after, limit=limit
        )
        milestones = await repository.milestones_of_many(session, [p.id for p in rows])
    items = [project_summary(p, milestones[p.id]) for p in rows]
    return ProjectPage(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.get(
    "/projects/by-allocation/{allocation_id}",
    response_model=ProjectDetail,
    summary="The project funded by an allocation, with its milestones (public)",
)
async def get_project_by_allocation(allocation_id: uuid.UUID, runtime: RuntimeDep) -> ProjectDetail:
    async with runtime.db.transaction() as session:
        project = await repository.project_by_allocation(session, allocation_id)
        return await _detail(session, project, f"no project for allocation {allocation_id}")


@router.get(
    "/projects/{project_id}",
    response_model=ProjectDetail,
    summary="A project with its milestones, budget and disbursed total (public)",
)
async def get_project(project_id: uuid.UUID, runtime: RuntimeDep) -> ProjectDetail:
    async with runtime.db.transaction() as session:
        project = await repository.project_by_id(session, project_id)
        return await _detail(session, project, f"project {project_id} does not exist")


async def _detail(session: AsyncSession, project: Project | None, missing: str) -> ProjectDetail:
    if project is None:
        raise NotFound(missing, code="project_not_found")
    return project_detail(project, await repository.milestones_of(session, project.id))


@router.post(
    "/projects/{project_id}/milestones/{milestone_id}:verify",
    response_model=VerificationOut,
    summary="Attest that a milestone's work is done, releasing its tranche (overseer)",
)
async def verify_milestone(
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    body: VerifyMilestoneIn,
    principal: Overseer,
    runtime: RuntimeDep,
) -> VerificationOut:
    async with runtime.db.transaction() as session:
        result = await projects.verify_milestone(
            session,
            principal,
            project_id=project_id,
            milestone_id=milestone_id,
            note=body.note,
            now=datetime.now(UTC),
        )
        return VerificationOut(project_id=result.project.id, milestone=milestone_out(result.milestone))
