"""Use cases of the projects service: open a project for an allocation, verify a milestone,
record a tranche as funded, or as refused by funding; read projects (REST and gRPC alike).

Every use case runs inside the unit of work it is given and stages its event there, so state
and event are committed together or not at all.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.auth.roles import Role
from comuna_platform.errors import NotFound
from comuna_platform.uow import UnitOfWork
from comuna_projects.domain.events import MilestoneFunded, MilestoneVerified, ProjectCreated
from comuna_projects.domain.plan import MilestonePlan
from comuna_projects.domain.rules import check_verifiable, milestone_id_for, project_id_for
from comuna_projects.storage import repository
from comuna_projects.storage.models import Milestone, Project
from comuna_projects.vocabulary import MilestoneStatus, ProjectStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Allocation:
    """What funding told us about an allocation, already validated."""

    allocation_id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    commune_code: str
    candidate_id: uuid.UUID | None
    title: str
    budget_minor: int
    currency: str


async def create_project(uow: UnitOfWork, plan: MilestonePlan, allocation: Allocation) -> Project | None:
    """Open the project of an allocation with the plan's milestones; None if it already exists.

    Safe against the same allocation arriving twice under different event ids (a republish):
    the project id is derived from the allocation id and allocation_id is unique.
    """
    session = uow.session
    project_id = project_id_for(allocation.allocation_id)
    inserted = await repository.insert_project_if_absent(
        session,
        {
            "id": project_id,
            "allocation_id": allocation.allocation_id,
            "consultation_id": allocation.consultation_id,
            "commune_id": allocation.commune_id,
            "commune_code": allocation.commune_code,
            "candidate_id": allocation.candidate_id,
            "title": allocation.title,
            "budget_minor": allocation.budget_minor,
            "currency": allocation.currency,
            "status": ProjectStatus.IN_PROGRESS,
        },
    )
    if not inserted:
        log.info("project already exists for allocation", extra={"allocation_id": str(allocation.allocation_id)})
        return None
    tranches = plan.split(allocation.budget_minor)
    await repository.insert_milestones(
        session,
        [
            {
                "id": milestone_id_for(project_id, sequence),
                "project_id": project_id,
                "sequence": sequence,
                "title": step.title,
                "tranche_minor": tranche,
                "currency": allocation.currency,
                "status": MilestoneStatus.PENDING,
            }
            for sequence, (step, tranche) in enumerate(zip(plan.steps, tranches, strict=True), start=1)
        ],
    )
    project = await repository.project_by_id(session, project_id)
    assert project is not None
    milestones = await repository.milestones_of(session, project_id)
    await uow.stage(ProjectCreated(project, milestones), aggregate_id=str(project_id))
    return project


@dataclass(frozen=True)
class Verification:
    project: Project
    milestones: list[Milestone]
    milestone: Milestone


async def verify_milestone(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    milestone_id: uuid.UUID,
    note: str,
    now: datetime,
) -> Verification:
    """An overseer attests that a milestone's work is done, which releases its tranche.

    The project row is locked first, so two verifications of the same project (say, a
    double click) are serialised: the second sees the milestone verified and gets a 409.
    All checks happen before the first write.
    """
    session = uow.session
    project = await repository.project_by_id(session, project_id, for_update=True)
    if project is None:
        raise NotFound(f"project {project_id} does not exist", code="project_not_found")
    milestones = await repository.milestones_of(session, project.id)
    milestone = next((m for m in milestones if m.id == milestone_id), None)
    if milestone is None:
        raise NotFound(f"milestone {milestone_id} does not exist in project {project_id}", code="milestone_not_found")
    # The project's commune from this service's own data (copied from the allocation event).
    # Where it sits today comes from identity's register (a commune may have moved).
    caller.require([Role.OVERSEER, Role.OPERATOR], await lineages.of(project.commune_code))
    check_verifiable(milestones, milestone_id)

    milestone.status = MilestoneStatus.VERIFIED
    milestone.verified_by = caller.subject
    milestone.verified_at = now
    milestone.verification_note = note
    await session.flush()
    await uow.stage(MilestoneVerified(project, milestone, caller.subject), aggregate_id=str(project.id))
    return Verification(project=project, milestones=milestones, milestone=milestone)


@dataclass(frozen=True)
class Disbursement:
    """What funding told us about a disbursed tranche, already validated."""

    disbursement_id: uuid.UUID
    allocation_id: uuid.UUID | None
    project_id: uuid.UUID | None
    milestone_id: uuid.UUID
    amount_minor: int
    currency: str
    disbursed_at: datetime


async def record_disbursement(uow: UnitOfWork, disbursement: Disbursement) -> bool:
    """Mark the milestone funded (and the project completed once all are); True if it changed.

    Events that do not fit our state are logged and ignored rather than retried: retrying
    cannot make them fit, and they must not block the events behind them.
    """
    session = uow.session
    context = {"disbursement_id": str(disbursement.disbursement_id), "milestone_id": str(disbursement.milestone_id)}
    # Only the project id first: the milestone itself is read after the project lock is held.
    project_id = await repository.project_id_of_milestone(session, disbursement.milestone_id)
    if project_id is None:
        log.error("tranche disbursed for an unknown milestone; ignored", extra=context)
        return False
    project = await repository.project_by_id(session, project_id, for_update=True)
    assert project is not None
    if disbursement.project_id not in (None, project.id) or disbursement.allocation_id not in (
        None,
        project.allocation_id,
    ):
        log.error("tranche disbursed names another project or allocation than its milestone; ignored", extra=context)
        return False
    milestones = await repository.milestones_of(session, project.id)
    milestone = next(m for m in milestones if m.id == disbursement.milestone_id)
    if milestone.status == MilestoneStatus.FUNDED:
        if milestone.disbursement_id != disbursement.disbursement_id:
            log.error("milestone already funded by another disbursement; ignored", extra=context)
        return False
    if milestone.status != MilestoneStatus.VERIFIED:
        log.error("tranche disbursed for a milestone that was never verified; ignored", extra=context)
        return False
    reused = await repository.milestone_with_disbursement(session, disbursement.disbursement_id)
    if reused is not None:
        log.error("disbursement id already recorded for another milestone; ignored", extra=context)
        return False
    if disbursement.currency != milestone.currency:
        log.error("tranche disbursed in another currency than the milestone's; ignored", extra=context)
        return False
    if disbursement.amount_minor != milestone.tranche_minor:
        # Funding's ledger is authoritative for what moved; record it and flag the difference.
        log.warning(
            "tranche disbursed differs from the milestone's tranche",
            extra={**context, "tranche_minor": milestone.tranche_minor, "amount_minor": disbursement.amount_minor},
        )

    if milestone.disbursement_rejected_reason is not None:
        # Funding's ledger is authoritative: money moved after all, so the refusal is history.
        log.warning(
            "tranche disbursed for a milestone whose tranche was refused; now funded",
            extra={**context, "rejected_reason": milestone.disbursement_rejected_reason},
        )
        milestone.disbursement_rejected_reason = None
        milestone.disbursement_rejected_at = None

    milestone.status = MilestoneStatus.FUNDED
    milestone.funded_at = disbursement.disbursed_at
    milestone.funded_minor = disbursement.amount_minor
    milestone.disbursement_id = disbursement.disbursement_id
    if all(m.status == MilestoneStatus.FUNDED for m in milestones):
        project.status = ProjectStatus.COMPLETED
        project.completed_at = disbursement.disbursed_at
    await session.flush()
    await uow.stage(
        MilestoneFunded(project.id, milestone.id, disbursement.disbursement_id), aggregate_id=str(project.id)
    )
    return True


@dataclass(frozen=True)
class Rejection:
    """What funding told us about a refused tranche, already validated."""

    disbursement_id: uuid.UUID
    allocation_id: uuid.UUID | None
    project_id: uuid.UUID | None
    milestone_id: uuid.UUID
    reason: str
    rejected_at: datetime


async def record_rejection(uow: UnitOfWork, rejection: Rejection) -> bool:
    """Note on the verified milestone that funding refused its tranche; True if it changed.

    The milestone stays `verified` (its work was attested; only the money is missing) and no
    event is emitted. A copy of the same refusal (redelivery, republish) changes nothing: the
    first reason stays. Events that do not fit our state are logged and ignored, as above.
    """
    context = {
        "disbursement_id": str(rejection.disbursement_id),
        "milestone_id": str(rejection.milestone_id),
        "reason": rejection.reason,
    }
    session = uow.session
    project_id = await repository.project_id_of_milestone(session, rejection.milestone_id)
    if project_id is None:
        log.error("tranche refused for an unknown milestone; ignored", extra=context)
        return False
    # The same lock as every other state change of the project, so a refusal and a funding of
    # one milestone (which funding never sends both of) could not interleave either.
    project = await repository.project_by_id(session, project_id, for_update=True)
    assert project is not None
    if rejection.project_id not in (None, project.id) or rejection.allocation_id not in (None, project.allocation_id):
        log.error("tranche refused names another project or allocation than its milestone; ignored", extra=context)
        return False
    milestone = await repository.milestone_by_id(session, rejection.milestone_id)
    assert milestone is not None
    if milestone.status != MilestoneStatus.VERIFIED:
        log.error(
            "tranche refused for a milestone that is not verified; ignored",
            extra={**context, "status": milestone.status},
        )
        return False
    if milestone.disbursement_rejected_reason is not None:
        log.info("tranche refusal already recorded", extra=context)
        return False
    milestone.disbursement_rejected_reason = rejection.reason
    milestone.disbursement_rejected_at = rejection.rejected_at
    await session.flush()
    log.warning("funding refused the tranche of a verified milestone", extra=context)
    return True


# --- reads (REST and gRPC) ------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectView:
    project: Project
    milestones: Sequence[Milestone]


async def project_view(
    uow: UnitOfWork, *, project_id: uuid.UUID | None = None, allocation_id: uuid.UUID | None = None
) -> ProjectView:
    """A project with its milestones, by id or by the allocation that funds it; 404 otherwise."""
    if project_id is not None:
        project = await repository.project_by_id(uow.session, project_id)
        missing = f"project {project_id} does not exist"
    else:
        assert allocation_id is not None
        project = await repository.project_by_allocation(uow.session, allocation_id)
        missing = f"no project for allocation {allocation_id}"
    if project is None:
        raise NotFound(missing, code="project_not_found")
    return ProjectView(project, await repository.milestones_of(uow.session, project.id))


@dataclass(frozen=True)
class ProjectPage:
    items: list[ProjectView]
    more: bool


async def list_projects(
    uow: UnitOfWork,
    *,
    consultation_id: uuid.UUID | None,
    commune_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> ProjectPage:
    """Projects matching the filters, in id order, each with its milestones."""
    rows = await repository.list_projects(
        uow.session, consultation_id=consultation_id, commune_id=commune_id, after=after, limit=limit + 1
    )
    more, rows = len(rows) > limit, rows[:limit]
    milestones = await repository.milestones_of_many(uow.session, [p.id for p in rows])
    return ProjectPage([ProjectView(p, milestones[p.id]) for p in rows], more)
