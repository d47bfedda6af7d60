"""Use cases of the projects service driven by funding's events: open a project for an
allocation, record a tranche as funded, or as refused by funding; and the reads of projects
(REST and gRPC alike). What people do with a project is in `execution`, `milestones`,
`progress` and `residents`.

Every use case runs inside the unit of work it is given and stages its event there, so state
and event are committed together or not at all.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.errors import NotFound, Unavailable
from comuna_platform.uow import UnitOfWork
from comuna_projects.domain import lifecycle
from comuna_projects.domain.events import MilestoneFunded, ProjectCreated
from comuna_projects.domain.plan import MilestonePlan
from comuna_projects.domain.planning import Plan, PlannedMilestone, default_plan
from comuna_projects.domain.rules import DONE, milestone_id_for, project_id_for
from comuna_projects.storage import repository
from comuna_projects.storage.models import Milestone, PlanRevision, Project
from comuna_projects.vocabulary import MilestoneStatus, Stage

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
    funding_source: str


async def create_project(
    uow: UnitOfWork,
    plan: MilestonePlan,
    allocation: Allocation,
    *,
    lineages: TerritoryLineages,
    now: datetime,
) -> Project | None:
    """Open the project of an allocation, planned, with the configured plan's milestones due a
    month apart (the spokespeople adjust the plan before starting); None if it already exists.

    Safe against the same allocation arriving twice under different event ids (a republish):
    the project id is derived from the allocation id and allocation_id is unique.
    """
    session = uow.session
    project_id = project_id_for(allocation.allocation_id)
    state_code, municipality_code = await _whereabouts(lineages, allocation.commune_code)
    category = None
    if allocation.candidate_id is not None:
        category = await repository.category_of_candidate(session, allocation.candidate_id)
    inserted = await repository.insert_project_if_absent(
        session,
        {
            "id": project_id,
            "allocation_id": allocation.allocation_id,
            "consultation_id": allocation.consultation_id,
            "commune_id": allocation.commune_id,
            "commune_code": allocation.commune_code,
            "state_code": state_code,
            "municipality_code": municipality_code,
            "candidate_id": allocation.candidate_id,
            "category": category,
            "title": allocation.title,
            "budget_minor": allocation.budget_minor,
            "currency": allocation.currency,
            "funders": [{"source": allocation.funding_source, "amount_minor": allocation.budget_minor}],
            "status": Stage.PLANNED,
            "created_at": now,
        },
    )
    if not inserted:
        log.info("project already exists for allocation", extra={"allocation_id": str(allocation.allocation_id)})
        return None
    today = now.date()
    first = default_plan(
        plan,
        budget_minor=allocation.budget_minor,
        due_dates=[today + timedelta(days=DAYS_BETWEEN_MILESTONES * k) for k in range(1, len(plan.steps) + 1)],
    )
    await repository.insert_milestones(session, milestone_rows(project_id, allocation.currency, first, revision=1))
    await repository.add(
        session,
        PlanRevision(
            project_id=project_id,
            revision=1,
            milestones=plan_json(first),
            made_by="system",
            reason="the plan every project starts with (settings: milestone_plan)",
            made_at=now,
        ),
    )
    project = await repository.project_by_id(session, project_id)
    assert project is not None
    milestones = await repository.milestones_of(session, project_id)
    await uow.stage(ProjectCreated(project, milestones), aggregate_id=str(project_id))
    return project


# A new project's default milestones fall due this many days apart.
DAYS_BETWEEN_MILESTONES = 30


async def _whereabouts(lineages: TerritoryLineages, commune_code: str) -> tuple[str | None, str | None]:
    """(state, municipality) of a commune, or (None, None) when identity does not know it or
    cannot answer now: a project is never held back for it (its start fills them in)."""
    try:
        return whereabouts((await lineages.of(commune_code)).codes)
    except (NotFound, Unavailable) as exc:
        log.warning(
            "no state or municipality for the commune yet", extra={"commune_code": commune_code, "reason": exc.code}
        )
        return None, None


def whereabouts(codes: Sequence[str]) -> tuple[str | None, str | None]:
    """The second and third codes of a commune's lineage (country, state, municipality, ...),
    the order identity's register keeps."""
    return (codes[1] if len(codes) > 2 else None), (codes[2] if len(codes) > 3 else None)


def milestone_rows(
    project_id: uuid.UUID, currency: str, plan: Plan, *, revision: int, first_sequence: int = 1
) -> list[dict[str, object]]:
    """Rows of the milestones of `plan` from `first_sequence` on (the earlier ones are kept)."""
    return [
        {
            "id": milestone_id_for(project_id, sequence, revision),
            "project_id": project_id,
            "sequence": sequence,
            "title": m.title,
            "due_on": m.due_on,
            "tranche_minor": m.share_minor,
            "currency": currency,
            "status": MilestoneStatus.PENDING,
        }
        for sequence, m in enumerate(plan.milestones, start=1)
        if sequence >= first_sequence
    ]


def plan_json(plan: Plan) -> list[dict[str, object]]:
    return [{"title": m.title, "due_on": m.due_on.isoformat(), "share_minor": m.share_minor} for m in plan.milestones]


def plan_of(rows: Sequence[Milestone]) -> Plan:
    return Plan(tuple(PlannedMilestone(m.title, m.due_on, m.tranche_minor) for m in rows))


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
    transfer_id: uuid.UUID | None = None


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
    if project.disbursed_minor + disbursement.amount_minor > project.budget_minor:
        log.error(
            "tranche disbursed would take the project past its budget; ignored",
            extra={**context, "budget_minor": project.budget_minor, "disbursed_minor": project.disbursed_minor},
        )
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
    milestone.transfer_id = disbursement.transfer_id
    # The money is on the commune's account: it may now be spent (expenditures). Completing the
    # project is the spokespeople's act, once all is verified, paid and spent (domain.execution).
    project.disbursed_minor += disbursement.amount_minor
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
    items: list[Project]
    more: bool


async def list_projects(
    uow: UnitOfWork,
    *,
    consultation_id: uuid.UUID | None,
    commune_id: uuid.UUID | None,
    status: Stage | None = None,
    after: uuid.UUID | None,
    limit: int,
) -> ProjectPage:
    """Projects matching the filters, in id order."""
    rows = await repository.list_projects(
        uow.session,
        consultation_id=consultation_id,
        commune_id=commune_id,
        status=status,
        after=after,
        limit=limit + 1,
    )
    return ProjectPage(rows[:limit], len(rows) > limit)


async def locked_project(uow: UnitOfWork, project_id: uuid.UUID) -> tuple[Project, list[Milestone]]:
    """The project, row-locked, and its milestones; 404 when there is none.

    Every change to a project (or anything of it) takes this lock first, so two changes of one
    project run one after the other and each sees what the previous one did."""
    project = await repository.project_by_id(uow.session, project_id, for_update=True)
    if project is None:
        raise NotFound(f"project {project_id} does not exist", code="project_not_found")
    return project, await repository.milestones_of(uow.session, project.id)


def milestone_progress(milestones: Sequence[Milestone]) -> list[lifecycle.MilestoneProgress]:
    """The milestones as the life-cycle rules see them. A milestone due on a day is overdue
    from the next day on (UTC): the whole due day counts."""
    return [
        lifecycle.MilestoneProgress(
            sequence=m.sequence,
            due_at=datetime.combine(m.due_on + timedelta(days=1), time(), tzinfo=UTC),
            reported_done=m.status != MilestoneStatus.PENDING,
            verified=m.status in DONE,
        )
        for m in milestones
    ]
