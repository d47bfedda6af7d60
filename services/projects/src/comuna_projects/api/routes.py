"""REST transport of the projects service: public reads and milestone verification."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import TerritoryLineagesDep, require_assignment
from comuna_platform.auth.roles import Role
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.paging import decode_page_token, encode_page_token
from comuna_projects.api.schemas import ProjectDetail, ProjectPage, VerificationOut, VerifyMilestoneIn
from comuna_projects.api.views import milestone_out, project_detail, project_summary
from comuna_projects.domain import projects

router = APIRouter(prefix="/v1", tags=["projects"])

# The role is checked here; where it is held, against the project's commune, in the use case.
Overseer = Annotated[Caller, require_assignment(Role.OVERSEER, Role.OPERATOR)]
PageToken = Annotated[str, Query(max_length=512, description="`next_page_token` of the previous page")]


@router.get(
    "/projects",
    response_model=ProjectPage,
    summary="List projects, optionally of one consultation and/or commune (public)",
)
async def list_projects(
    uow: UnitOfWorkDep,
    consultation_id: uuid.UUID | None = None,
    commune_id: uuid.UUID | None = None,
    page_token: PageToken = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ProjectPage:
    after = decode_page_token(page_token, [uuid.UUID])
    page = await projects.list_projects(
        uow, consultation_id=consultation_id, commune_id=commune_id, after=after[0] if after else None, limit=limit
    )
    items = [project_summary(v.project, v.milestones) for v in page.items]
    return ProjectPage(items=items, next_page_token=encode_page_token(items[-1].id) if page.more else None)


@router.get(
    "/projects/by-allocation/{allocation_id}",
    response_model=ProjectDetail,
    summary="The project funded by an allocation, with its milestones (public)",
)
async def get_project_by_allocation(allocation_id: uuid.UUID, uow: UnitOfWorkDep) -> ProjectDetail:
    view = await projects.project_view(uow, allocation_id=allocation_id)
    return project_detail(view.project, view.milestones)


@router.get(
    "/projects/{project_id}",
    response_model=ProjectDetail,
    summary="A project with its milestones, budget and disbursed total (public)",
)
async def get_project(project_id: uuid.UUID, uow: UnitOfWorkDep) -> ProjectDetail:
    view = await projects.project_view(uow, project_id=project_id)
    return project_detail(view.project, view.milestones)


@router.post(
    "/projects/{project_id}/milestones/{milestone_id}:verify",
    response_model=VerificationOut,
    summary="Attest that a milestone's work is done, releasing its tranche (overseer)",
)
async def verify_milestone(
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    body: VerifyMilestoneIn,
    *,
    caller: Overseer,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
) -> VerificationOut:
    result = await projects.verify_milestone(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        milestone_id=milestone_id,
        note=body.note,
        now=datetime.now(UTC),
    )
    return VerificationOut(project_id=result.project.id, milestone=milestone_out(result.milestone))
