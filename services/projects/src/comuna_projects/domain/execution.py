"""What the commune does with its project's life and plan: start it, cancel it, complete it,
edit the plan while it is planned, and change it through a change request once it runs.

Every use case locks the project first (`projects.locked_project`), checks everything, then
writes and stages its event in the same transaction. Rules are in `lifecycle` and `planning`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork
from comuna_projects.domain import lifecycle, planning
from comuna_projects.domain.access import require_overseer, require_runner
from comuna_projects.domain.events import PlanChanged, ProjectCancelled, ProjectCompleted, ProjectStarted
from comuna_projects.domain.lifecycle import Move
from comuna_projects.domain.planning import Plan, PlannedMilestone
from comuna_projects.domain.projects import (
    locked_project,
    milestone_progress,
    milestone_rows,
    plan_json,
    plan_of,
    whereabouts,
)
from comuna_projects.domain.rules import attested_count
from comuna_projects.storage import repository
from comuna_projects.storage.models import ChangeRequest, Milestone, PlanRevision, Project
from comuna_projects.vocabulary import RequestState, Stage

MAX_SPOKESPEOPLE = 20
MAX_NAME = 200


def _stage(project: Project) -> Stage:
    return Stage(project.status)


def clean_names(names: Sequence[str]) -> list[str]:
    """The spokespeople's public names: 1 to 20, each 1 to 200 characters, none twice."""
    cleaned = [name.strip() for name in names]
    if not 1 <= len(cleaned) <= MAX_SPOKESPEOPLE:
        raise InvalidInput(f"name 1 to {MAX_SPOKESPEOPLE} responsible spokespeople", code="spokespeople_invalid")
    if any(not name or len(name) > MAX_NAME for name in cleaned):
        raise InvalidInput(f"a name has 1 to {MAX_NAME} characters", code="spokespeople_invalid")
    if len({name.casefold() for name in cleaned}) != len(cleaned):
        raise InvalidInput("a spokesperson is named twice", code="spokespeople_invalid")
    return cleaned


async def start_project(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    spokespeople: Sequence[str],
    now: datetime,
) -> Project:
    """planned -> in_execution, naming the spokespeople answerable for it; the plan is frozen
    from here on (changes go through change requests)."""
    project, _ = await locked_project(uow, project_id)
    await require_runner(caller, lineages, project)
    names = clean_names(spokespeople)
    project.status = lifecycle.move(_stage(project), Move.START)
    if project.state_code is None:
        # Identity could not say where the commune sits when the project was created.
        project.state_code, project.municipality_code = whereabouts((await lineages.of(project.commune_code)).codes)
    project.started_at = now
    project.spokespeople = names
    await uow.session.flush()
    await uow.stage(ProjectStarted(project), aggregate_id=str(project.id))
    return project


async def cancel_project(
    uow: UnitOfWork, caller: Caller, *, lineages: TerritoryLineages, project_id: uuid.UUID, reason: str, now: datetime
) -> Project:
    """Stop a project for good. Funding voids the tranches it still holds reserved and returns
    the unspent money to the funder; tranches already paid stay paid (and accounted for)."""
    project, _ = await locked_project(uow, project_id)
    await require_runner(caller, lineages, project)
    project.status = lifecycle.move(_stage(project), Move.CANCEL)
    project.cancelled_at = now
    project.cancel_reason = reason
    project.stalled_since = None
    await uow.session.flush()
    await uow.stage(ProjectCancelled(project), aggregate_id=str(project.id))
    return project


def spending_blockers(project: Project, milestones: Sequence[Milestone]) -> list[str]:
    """Why the spending is not reconciled: a tranche not paid yet, or money paid not spent."""
    blockers = [f"milestone {m.sequence}'s tranche is not paid yet" for m in milestones if m.status != "funded"]
    if project.spent_minor != project.disbursed_minor:
        blockers.append(
            f"{project.disbursed_minor - project.spent_minor} {project.currency} minor units disbursed are not "
            "accounted for by expenditures"
        )
    return blockers


async def complete_project(
    uow: UnitOfWork, caller: Caller, *, lineages: TerritoryLineages, project_id: uuid.UUID, now: datetime
) -> Project:
    """in_execution -> completed, once every milestone is verified and the spending reconciled
    (every tranche paid, every unit paid accounted for by an expenditure)."""
    project, milestones = await locked_project(uow, project_id)
    await require_runner(caller, lineages, project)
    lifecycle.move(_stage(project), Move.COMPLETE)  # refuses a stalled, planned or final project
    blockers = lifecycle.completion_blockers(milestone_progress(milestones), spending_reconciled=True)
    blockers += [] if blockers else spending_blockers(project, milestones)
    if blockers:
        raise FailedPrecondition(
            f"the project cannot be completed: {'; '.join(blockers)}", code="project_not_completable"
        )
    project.status = Stage.COMPLETED
    project.completed_at = now
    await uow.session.flush()
    await uow.stage(ProjectCompleted(project), aggregate_id=str(project.id))
    return project


# --- the plan -------------------------------------------------------------------------------


async def _replace_plan(
    uow: UnitOfWork,
    project: Project,
    milestones: list[Milestone],
    plan: Plan,
    *,
    made_by: str,
    reason: str,
    request: ChangeRequest | None,
    now: datetime,
) -> list[Milestone]:
    """Make `plan` the project's plan: the attested milestones stay as they are (same rows, same
    ids, same tranches), the rest is replaced by new milestones with new ids; a new revision is
    recorded and announced, so funding re-reserves the tranches."""
    session = uow.session
    keep = attested_count(milestones)
    removed = [m for m in milestones if m.sequence > keep]
    await repository.delete_milestones(session, [m.id for m in removed])
    await session.flush()
    revision = project.plan_revision + 1
    rows = milestone_rows(project.id, project.currency, plan, revision=revision, first_sequence=keep + 1)
    await repository.insert_milestones(session, rows)
    project.plan_revision = revision
    await repository.add(
        session,
        PlanRevision(
            project_id=project.id,
            revision=revision,
            milestones=plan_json(plan),
            made_by=made_by,
            reason=reason,
            change_request_id=None if request is None else request.id,
            made_at=now,
        ),
    )
    current = await repository.milestones_of(session, project.id)
    await uow.stage(
        PlanChanged(
            project=project,
            milestones=current,
            changed_by=made_by,
            reason=reason,
            change_request_id=None if request is None else request.id,
            removed_milestone_ids=[m.id for m in removed],
        ),
        aggregate_id=str(project.id),
    )
    return current


async def edit_plan(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    milestones: Sequence[PlannedMilestone],
    reason: str,
    now: datetime,
) -> list[Milestone]:
    """Replace the plan of a planned project (the spokespeople's call until execution starts)."""
    project, current = await locked_project(uow, project_id)
    await require_runner(caller, lineages, project)
    if _stage(project) not in lifecycle.PLAN_EDITABLE:
        raise FailedPrecondition(
            f"the project is {project.status}: its plan changes through a change request",
            code="plan_frozen",
        )
    plan = planning.validate_plan(milestones, budget_minor=project.budget_minor)
    return await _replace_plan(
        uow, project, current, plan, made_by=caller.subject, reason=reason, request=None, now=now
    )


async def propose_change(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    milestones: Sequence[PlannedMilestone],
    reason: str,
    now: datetime,
) -> ChangeRequest:
    """A spokesperson proposes a new plan for a project under way; the oversight committee
    decides. One open request per project (the database keeps it so)."""
    project, current = await locked_project(uow, project_id)
    await require_runner(caller, lineages, project)
    if _stage(project) not in lifecycle.UNDER_WAY:
        code = "plan_editable" if _stage(project) in lifecycle.PLAN_EDITABLE else "project_closed"
        raise FailedPrecondition(f"the project is {project.status}: no change request is taken", code=code)
    plan = planning.validate_plan(milestones, budget_minor=project.budget_minor)
    planning.check_frozen_kept(plan_of(current), plan, attested=attested_count(current))
    if await repository.open_change_request(uow.session, project.id) is not None:
        raise Conflict("the project already has an open change request", code="change_request_open")
    request = ChangeRequest(
        id=new_id(),
        project_id=project.id,
        base_revision=project.plan_revision,
        milestones=plan_json(plan),
        reason=reason,
        requested_by=caller.subject,
        requested_at=now,
        state=RequestState.OPEN,
    )
    await repository.add(uow.session, request)
    return request


def _as_request(row: ChangeRequest) -> planning.ChangeRequest:
    return planning.ChangeRequest(
        requested_by=row.requested_by,
        proposed=plan_from_json(row.milestones),
        reason=row.reason,
        state=RequestState(row.state),
        decided_by=row.decided_by,
    )


def plan_from_json(milestones: Sequence[dict[str, object]]) -> Plan:
    return Plan(
        tuple(
            PlannedMilestone(str(m["title"]), date.fromisoformat(str(m["due_on"])), int(str(m["share_minor"])))
            for m in milestones
        )
    )


@dataclass(frozen=True)
class Decision:
    request: ChangeRequest
    milestones: list[Milestone]


async def _open_request(uow: UnitOfWork, project: Project, request_id: uuid.UUID) -> ChangeRequest:
    row = await repository.change_request(uow.session, project.id, request_id)
    if row is None:
        raise NotFound(
            f"change request {request_id} does not exist in project {project.id}", code="change_request_not_found"
        )
    return row


async def decide_change(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    request_id: uuid.UUID,
    approve: bool,
    note: str,
    now: datetime,
) -> Decision:
    """An overseer who did not propose it approves (the plan is replaced) or rejects it."""
    project, current = await locked_project(uow, project_id)
    await require_overseer(caller, lineages, project)
    row = await _open_request(uow, project, request_id)
    decided = planning.decide(_as_request(row), by=caller.subject, approve=approve)
    if approve:
        if _stage(project) not in lifecycle.UNDER_WAY:
            raise FailedPrecondition(f"the project is {project.status}: no plan change applies", code="project_closed")
        if row.base_revision != project.plan_revision:
            raise FailedPrecondition(
                "the plan changed since the request was made; propose it again", code="plan_changed"
            )
        # Re-checked now: a milestone may have been reported since the request was made.
        planning.check_frozen_kept(plan_of(current), decided.proposed, attested=attested_count(current))
    row.state = decided.state
    row.decided_by = caller.subject
    row.decided_at = now
    row.decision_note = note
    await uow.session.flush()
    if approve:
        current = await _replace_plan(
            uow,
            project,
            current,
            decided.proposed,
            made_by=caller.subject,
            reason=f"change request {row.id}: {row.reason}",
            request=row,
            now=now,
        )
    return Decision(request=row, milestones=current)


async def withdraw_change(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    request_id: uuid.UUID,
    now: datetime,
) -> ChangeRequest:
    project, _ = await locked_project(uow, project_id)
    await require_runner(caller, lineages, project)
    row = await _open_request(uow, project, request_id)
    planning.withdraw(_as_request(row), by=caller.subject)
    row.state = RequestState.WITHDRAWN
    row.decided_at = None
    await uow.session.flush()
    return row
