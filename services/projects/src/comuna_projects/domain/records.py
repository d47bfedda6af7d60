"""Reads of a project's records: its plan's history, change requests, progress reports,
expenditures and oversight reports, each with the evidence it cites."""

from __future__ import annotations

import uuid

from comuna_platform.errors import NotFound
from comuna_platform.uow import UnitOfWork
from comuna_projects.storage import repository
from comuna_projects.storage.models import (
    ChangeRequest,
    Expenditure,
    MilestoneReturn,
    OversightReport,
    PlanRevision,
    ProgressReport,
    Project,
)


async def project_or_404(uow: UnitOfWork, project_id: uuid.UUID) -> Project:
    project = await repository.project_by_id(uow.session, project_id)
    if project is None:
        raise NotFound(f"project {project_id} does not exist", code="project_not_found")
    return project


async def plan_history(uow: UnitOfWork, project_id: uuid.UUID) -> list[PlanRevision]:
    await project_or_404(uow, project_id)
    return await repository.plan_revisions(uow.session, project_id)


async def milestone_returns(uow: UnitOfWork, project_id: uuid.UUID) -> list[MilestoneReturn]:
    await project_or_404(uow, project_id)
    return await repository.milestone_returns(uow.session, project_id)


async def change_requests(uow: UnitOfWork, project_id: uuid.UUID) -> list[ChangeRequest]:
    await project_or_404(uow, project_id)
    return await repository.change_requests(uow.session, project_id)


async def progress_reports(uow: UnitOfWork, project_id: uuid.UUID) -> list[tuple[ProgressReport, list[str]]]:
    await project_or_404(uow, project_id)
    reports = await repository.progress_reports(uow.session, project_id)
    cited = await repository.evidence_of(uow.session, "progress", [r.id for r in reports])
    return [(r, cited[r.id]) for r in reports]


async def expenditures(uow: UnitOfWork, project_id: uuid.UUID) -> list[Expenditure]:
    await project_or_404(uow, project_id)
    return await repository.expenditures(uow.session, project_id)


async def oversight_reports(uow: UnitOfWork, project_id: uuid.UUID) -> list[tuple[OversightReport, list[str]]]:
    await project_or_404(uow, project_id)
    reports = await repository.oversight_reports(uow.session, project_id)
    cited = await repository.evidence_of(uow.session, "oversight", [r.id for r in reports])
    return [(r, cited[r.id]) for r in reports]
