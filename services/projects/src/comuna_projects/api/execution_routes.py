"""REST transport of a project's execution: its stages, its plan and change requests, and the
four-eyes milestone flow (a spokesperson reports, an overseer who is not them verifies)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import TerritoryLineagesDep, require_assignment
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep
from comuna_projects.api.schemas import (
    CancelIn,
    ChangeRequestOut,
    DecisionIn,
    PlanIn,
    ProjectDetail,
    ReportMilestoneIn,
    StartIn,
    VerificationOut,
    VerifyMilestoneIn,
)
from comuna_projects.api.views import change_request_out, milestone_out, project_detail
from comuna_projects.domain import execution, milestones, projects
from comuna_projects.domain.access import OVERSEERS, RUNNERS
from comuna_projects.domain.planning import PlannedMilestone

router = APIRouter(prefix="/v1", tags=["project execution"])

# The role is checked here; where it is held, against the project's commune, in the use case.
Runner = Annotated[Caller, require_assignment(*RUNNERS)]
Overseer = Annotated[Caller, require_assignment(*OVERSEERS)]


def _planned(body: PlanIn) -> list[PlannedMilestone]:
    return [PlannedMilestone(m.title, m.due_on, m.share_minor) for m in body.milestones]


@router.put(
    "/projects/{project_id}/plan",
    response_model=ProjectDetail,
    summary="Replace the plan of a planned project: milestones, due dates, shares (spokesperson)",
)
async def edit_plan(
    project_id: uuid.UUID,
    body: PlanIn,
    *,
    caller: Runner,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ProjectDetail:
    await execution.edit_plan(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        milestones=_planned(body),
        reason=body.reason,
        now=runtime.clock.now(),
    )
    return await _detail(uow, project_id)


@router.post(
    "/projects/{project_id}:start",
    response_model=ProjectDetail,
    summary="Start executing a planned project; its plan is frozen from here on (spokesperson)",
)
async def start_project(
    project_id: uuid.UUID,
    body: StartIn,
    *,
    caller: Runner,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ProjectDetail:
    project = await execution.start_project(
        uow, caller, lineages=lineages, project_id=project_id, spokespeople=body.spokespeople, now=runtime.clock.now()
    )
    return await _detail(uow, project.id)


@router.post(
    "/projects/{project_id}:cancel",
    response_model=ProjectDetail,
    summary="Cancel a project; funding returns the unspent money to its funder (spokesperson)",
)
async def cancel_project(
    project_id: uuid.UUID,
    body: CancelIn,
    *,
    caller: Runner,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ProjectDetail:
    project = await execution.cancel_project(
        uow, caller, lineages=lineages, project_id=project_id, reason=body.reason, now=runtime.clock.now()
    )
    return await _detail(uow, project.id)


@router.post(
    "/projects/{project_id}:complete",
    response_model=ProjectDetail,
    summary="Complete a project: every milestone verified and paid, every unit paid spent (spokesperson)",
)
async def complete_project(
    project_id: uuid.UUID,
    *,
    caller: Runner,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ProjectDetail:
    project = await execution.complete_project(
        uow, caller, lineages=lineages, project_id=project_id, now=runtime.clock.now()
    )
    return await _detail(uow, project.id)


async def _detail(uow: UnitOfWorkDep, project_id: uuid.UUID) -> ProjectDetail:
    view = await projects.project_view(uow, project_id=project_id)
    return project_detail(view.project, view.milestones)


@router.post(
    "/projects/{project_id}/change-requests",
    response_model=ChangeRequestOut,
    status_code=201,
    summary="Propose a new plan for a project under way; the oversight committee decides (spokesperson)",
)
async def propose_change(
    project_id: uuid.UUID,
    body: PlanIn,
    *,
    caller: Runner,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ChangeRequestOut:
    request = await execution.propose_change(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        milestones=_planned(body),
        reason=body.reason,
        now=runtime.clock.now(),
    )
    return change_request_out(request)


async def _decide(
    project_id: uuid.UUID,
    request_id: uuid.UUID,
    body: DecisionIn,
    *,
    approve: bool,
    caller: Caller,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ChangeRequestOut:
    decision = await execution.decide_change(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        request_id=request_id,
        approve=approve,
        note=body.note,
        now=runtime.clock.now(),
    )
    return change_request_out(decision.request)


@router.post(
    "/projects/{project_id}/change-requests/{request_id}:approve",
    response_model=ChangeRequestOut,
    summary="Approve a change request: the plan is replaced (overseer who did not propose it)",
)
async def approve_change(
    project_id: uuid.UUID,
    request_id: uuid.UUID,
    body: DecisionIn,
    *,
    caller: Overseer,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ChangeRequestOut:
    return await _decide(
        project_id, request_id, body, approve=True, caller=caller, uow=uow, lineages=lineages, runtime=runtime
    )


@router.post(
    "/projects/{project_id}/change-requests/{request_id}:reject",
    response_model=ChangeRequestOut,
    summary="Reject a change request: the plan stays (overseer who did not propose it)",
)
async def reject_change(
    project_id: uuid.UUID,
    request_id: uuid.UUID,
    body: DecisionIn,
    *,
    caller: Overseer,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ChangeRequestOut:
    return await _decide(
        project_id, request_id, body, approve=False, caller=caller, uow=uow, lineages=lineages, runtime=runtime
    )


@router.post(
    "/projects/{project_id}/change-requests/{request_id}:withdraw",
    response_model=ChangeRequestOut,
    summary="Withdraw an open change request (the spokesperson who proposed it)",
)
async def withdraw_change(
    project_id: uuid.UUID,
    request_id: uuid.UUID,
    *,
    caller: Runner,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ChangeRequestOut:
    request = await execution.withdraw_change(
        uow, caller, lineages=lineages, project_id=project_id, request_id=request_id, now=runtime.clock.now()
    )
    return change_request_out(request)


@router.post(
    "/projects/{project_id}/milestones/{milestone_id}:report",
    response_model=VerificationOut,
    summary="Report a milestone's work done, for an overseer to verify (spokesperson)",
)
async def report_milestone(
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    body: ReportMilestoneIn,
    *,
    caller: Runner,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> VerificationOut:
    result = await milestones.report_milestone(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        milestone_id=milestone_id,
        note=body.note,
        now=runtime.clock.now(),
    )
    return VerificationOut(project_id=result.project.id, milestone=milestone_out(result.milestone))


@router.post(
    "/projects/{project_id}/milestones/{milestone_id}:verify",
    response_model=VerificationOut,
    summary="Attest a reported milestone, releasing its tranche (overseer who did not report it)",
)
async def verify_milestone(
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    body: VerifyMilestoneIn,
    *,
    caller: Overseer,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> VerificationOut:
    result = await milestones.verify_milestone(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        milestone_id=milestone_id,
        note=body.note,
        now=runtime.clock.now(),
    )
    return VerificationOut(project_id=result.project.id, milestone=milestone_out(result.milestone))


@router.post(
    "/projects/{project_id}/milestones/{milestone_id}:return",
    response_model=VerificationOut,
    summary="Send a reported milestone back, saying why; it is pending again (overseer who did not report it)",
)
async def return_milestone(
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    body: DecisionIn,
    *,
    caller: Overseer,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> VerificationOut:
    result = await milestones.return_milestone(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        milestone_id=milestone_id,
        note=body.note,
        now=runtime.clock.now(),
    )
    return VerificationOut(project_id=result.project.id, milestone=milestone_out(result.milestone))
