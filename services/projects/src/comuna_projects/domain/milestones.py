"""Four eyes on every milestone: a spokesperson reports its work done, a member of the
commune's oversight committee who is not the reporter verifies it, and the verification is the
event on which funding releases the tranche (`projects.milestone.verified`). The committee may
instead send the report back (the work is not done): the milestone is pending again and the
refused report is kept (`milestone_returns`)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.errors import FailedPrecondition, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork
from comuna_projects.domain import lifecycle
from comuna_projects.domain.access import require_overseer, require_runner
from comuna_projects.domain.events import MilestoneReported, MilestoneReturned, MilestoneVerified
from comuna_projects.domain.oversight import check_verifier
from comuna_projects.domain.projects import locked_project
from comuna_projects.domain.rules import check_reportable, check_verifiable
from comuna_projects.storage import repository
from comuna_projects.storage.models import Milestone, MilestoneReturn, Project
from comuna_projects.vocabulary import MilestoneStatus, Stage


@dataclass(frozen=True)
class MilestoneChange:
    project: Project
    milestones: list[Milestone]
    milestone: Milestone


async def _authorized(
    uow: UnitOfWork,
    caller: Caller,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    *,
    require: Callable[[Caller, TerritoryLineages, Project], Awaitable[None]],
) -> tuple[Project, list[Milestone], Milestone]:
    """The project (locked) and the milestone, once the caller may act on the project: whoever
    may not learns nothing about its milestones (403 before any 404)."""
    project, milestones = await locked_project(uow, project_id)
    await require(caller, lineages, project)
    milestone = next((m for m in milestones if m.id == milestone_id), None)
    if milestone is None:
        raise NotFound(f"milestone {milestone_id} does not exist in project {project_id}", code="milestone_not_found")
    return project, milestones, milestone


def _require_under_way(project: Project) -> None:
    if Stage(project.status) not in lifecycle.UNDER_WAY:
        raise FailedPrecondition(
            f"the project is {project.status}: milestones are reported and verified while it is executed",
            code="project_not_under_way",
        )


async def report_milestone(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    note: str,
    now: datetime,
) -> MilestoneChange:
    """A spokesperson says the work of a milestone is done (milestones in order)."""
    project, milestones, milestone = await _authorized(
        uow, caller, lineages, project_id, milestone_id, require=require_runner
    )
    _require_under_way(project)
    check_reportable(milestones, milestone_id)
    milestone.status = MilestoneStatus.REPORTED
    milestone.reported_by = caller.subject
    milestone.reported_at = now
    milestone.report_note = note
    await uow.session.flush()
    await uow.stage(MilestoneReported(project, milestone), aggregate_id=str(project.id))
    return MilestoneChange(project, milestones, milestone)


async def verify_milestone(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    note: str,
    now: datetime,
) -> MilestoneChange:
    """An overseer who is not the reporter attests the reported work, which releases its tranche.

    The project row is locked first, so two verifications of the same project (a double click)
    are serialised: the second sees the milestone verified and gets a 409. All checks happen
    before the first write; the database refuses a verifier equal to the reporter as well.
    """
    project, milestones, milestone = await _authorized(
        uow, caller, lineages, project_id, milestone_id, require=require_overseer
    )
    _require_under_way(project)
    check_verifiable(milestones, milestone_id, reported_by=milestone.reported_by, verifier=caller.subject)
    milestone.status = MilestoneStatus.VERIFIED
    milestone.verified_by = caller.subject
    milestone.verified_at = now
    milestone.verification_note = note
    await uow.session.flush()
    await uow.stage(MilestoneVerified(project, milestone, caller.subject), aggregate_id=str(project.id))
    return MilestoneChange(project, milestones, milestone)


async def return_milestone(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    note: str,
    now: datetime,
) -> MilestoneChange:
    """An overseer who is not the reporter sends a reported milestone back, saying why."""
    project, milestones, milestone = await _authorized(
        uow, caller, lineages, project_id, milestone_id, require=require_overseer
    )
    _require_under_way(project)
    if milestone.status != MilestoneStatus.REPORTED:
        raise FailedPrecondition(
            f"milestone {milestone.sequence} is {milestone.status}: only a reported milestone is sent back",
            code="milestone_not_reported",
        )
    assert milestone.reported_by is not None and milestone.reported_at is not None
    check_verifier(reported_by=milestone.reported_by, verifier=caller.subject)
    await repository.add(
        uow.session,
        MilestoneReturn(
            id=new_id(),
            project_id=project.id,
            milestone_id=milestone.id,
            milestone_title=milestone.title,
            reported_by=milestone.reported_by,
            reported_at=milestone.reported_at,
            report_note=milestone.report_note or "",
            returned_by=caller.subject,
            returned_at=now,
            note=note,
        ),
    )
    milestone.status = MilestoneStatus.PENDING
    milestone.reported_by = milestone.reported_at = milestone.report_note = None
    await uow.session.flush()
    await uow.stage(MilestoneReturned(project, milestone, caller.subject, note), aggregate_id=str(project.id))
    return MilestoneChange(project, milestones, milestone)
