"""REST transport of the projects service: the public reads of projects and their records."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from comuna_platform.errors import NotFound
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.paging import decode_page_token, encode_page_token
from comuna_projects.api.deps import EvidenceStoreDep
from comuna_projects.api.schemas import (
    ChangeRequestOut,
    ExpenditureOut,
    Items,
    MilestoneReturnOut,
    OversightReportOut,
    PlanRevisionOut,
    ProgressReportOut,
    ProjectDetail,
    ProjectPage,
)
from comuna_projects.api.views import (
    change_request_out,
    expenditure_out,
    oversight_out,
    progress_out,
    project_detail,
    project_summary,
    return_out,
    revision_out,
)
from comuna_projects.domain import progress, projects, records
from comuna_projects.vocabulary import Stage

router = APIRouter(prefix="/v1", tags=["projects"])

PageToken = Annotated[str, Query(max_length=512, description="`next_page_token` of the previous page")]


@router.get(
    "/projects",
    response_model=ProjectPage,
    summary="List projects, optionally of one consultation, commune and/or stage (public)",
)
async def list_projects(
    uow: UnitOfWorkDep,
    *,
    consultation_id: uuid.UUID | None = None,
    commune_id: uuid.UUID | None = None,
    status: Stage | None = None,
    page_token: PageToken = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ProjectPage:
    after = decode_page_token(page_token, [uuid.UUID])
    page = await projects.list_projects(
        uow,
        consultation_id=consultation_id,
        commune_id=commune_id,
        status=status,
        after=after[0] if after else None,
        limit=limit,
    )
    items = [project_summary(p) for p in page.items]
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
    summary="A project: stage, milestones, budget by funder, disbursed, spent and progress (public)",
)
async def get_project(project_id: uuid.UUID, uow: UnitOfWorkDep) -> ProjectDetail:
    view = await projects.project_view(uow, project_id=project_id)
    return project_detail(view.project, view.milestones)


@router.get(
    "/projects/{project_id}/plan-revisions",
    response_model=Items[PlanRevisionOut],
    summary="Every plan the project has had, oldest first (public)",
)
async def list_plan_revisions(project_id: uuid.UUID, uow: UnitOfWorkDep) -> Items[PlanRevisionOut]:
    return Items(items=[revision_out(r) for r in await records.plan_history(uow, project_id)])


@router.get(
    "/projects/{project_id}/milestone-returns",
    response_model=Items[MilestoneReturnOut],
    summary="Milestone reports the oversight committee sent back, and why (public)",
)
async def list_milestone_returns(project_id: uuid.UUID, uow: UnitOfWorkDep) -> Items[MilestoneReturnOut]:
    return Items(items=[return_out(r) for r in await records.milestone_returns(uow, project_id)])


@router.get(
    "/projects/{project_id}/change-requests",
    response_model=Items[ChangeRequestOut],
    summary="The change requests to the project's plan, decided or not (public)",
)
async def list_change_requests(project_id: uuid.UUID, uow: UnitOfWorkDep) -> Items[ChangeRequestOut]:
    return Items(items=[change_request_out(r) for r in await records.change_requests(uow, project_id)])


@router.get(
    "/projects/{project_id}/progress-reports",
    response_model=Items[ProgressReportOut],
    summary="The project's progress reports with their evidence, oldest first (public)",
)
async def list_progress_reports(project_id: uuid.UUID, uow: UnitOfWorkDep) -> Items[ProgressReportOut]:
    return Items(items=[progress_out(r, e) for r, e in await records.progress_reports(uow, project_id)])


@router.get(
    "/projects/{project_id}/expenditures",
    response_model=Items[ExpenditureOut],
    summary="What the project spent, with receipts (public)",
)
async def list_expenditures(project_id: uuid.UUID, uow: UnitOfWorkDep) -> Items[ExpenditureOut]:
    return Items(items=[expenditure_out(e) for e in await records.expenditures(uow, project_id)])


@router.get(
    "/projects/{project_id}/oversight-reports",
    response_model=Items[OversightReportOut],
    summary="Residents' oversight reports and their answers, without who filed them (public)",
)
async def list_oversight_reports(project_id: uuid.UUID, uow: UnitOfWorkDep) -> Items[OversightReportOut]:
    return Items(items=[oversight_out(r, e) for r, e in await records.oversight_reports(uow, project_id)])


@router.get(
    "/evidence/{sha256}",
    summary="An evidence file, by the SHA-256 of its content (public, immutable)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "no such file"}},
)
async def get_evidence(sha256: str, uow: UnitOfWorkDep, store: EvidenceStoreDep) -> Response:
    row = await progress.evidence_file(uow, sha256)
    data = None if row is None else await store.get(row.sha256)
    if row is None or data is None:
        raise NotFound(f"no evidence file {sha256}", code="evidence_not_found")
    return Response(
        content=data,
        media_type=row.media_type,
        headers={
            "ETag": f'"sha256:{row.sha256}"',
            # RFC 9530: a client checks what it got without trusting the URL.
            "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(row.sha256)).decode('ascii')}:",
            # The content can never change under its address.
            "Cache-Control": "public, max-age=31536000, immutable",
            "Content-Disposition": "inline",
        },
    )
