"""Projects' protobuf edge: the views shared by the events we publish and the gRPC API, and the
translations of the domain's events (registered when the service is assembled)."""

from __future__ import annotations

from collections.abc import Sequence

from comuna.common.v1 import money_pb2
from comuna.projects.v1 import events_pb2
from comuna.projects.v1 import projects_pb2 as pb
from comuna_platform.events.translation import translates
from comuna_projects.domain.events import MilestoneFunded, MilestoneVerified, ProjectCreated
from comuna_projects.storage.models import Milestone, Project
from comuna_projects.vocabulary import MilestoneStatus

MILESTONE_STATUS = {
    MilestoneStatus.PENDING: pb.MILESTONE_STATUS_PENDING,
    MilestoneStatus.VERIFIED: pb.MILESTONE_STATUS_VERIFIED,
    MilestoneStatus.FUNDED: pb.MILESTONE_STATUS_FUNDED,
}


def money(amount_minor: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount_minor, currency=currency)


def milestone_message(milestone: Milestone) -> pb.Milestone:
    message = pb.Milestone(
        milestone_id=str(milestone.id),
        sequence=milestone.sequence,
        title=milestone.title,
        tranche=money(milestone.tranche_minor, milestone.currency),
        status=MILESTONE_STATUS[MilestoneStatus(milestone.status)],
        disbursement_rejected_reason=milestone.disbursement_rejected_reason or "",
    )
    if milestone.disbursement_rejected_at is not None:
        message.disbursement_rejected_at.FromDatetime(milestone.disbursement_rejected_at)
    return message


def project_message(project: Project, milestones: Sequence[Milestone]) -> pb.Project:
    return pb.Project(
        project_id=str(project.id),
        allocation_id=str(project.allocation_id),
        consultation_id=str(project.consultation_id),
        commune_id=str(project.commune_id),
        title=project.title,
        budget=money(project.budget_minor, project.currency),
        milestones=[milestone_message(m) for m in milestones],
        commune_code=project.commune_code,
    )


@translates(ProjectCreated)
def project_created(event: ProjectCreated) -> events_pb2.ProjectCreated:
    return events_pb2.ProjectCreated(project=project_message(event.project, event.milestones))


@translates(MilestoneVerified)
def milestone_verified(event: MilestoneVerified) -> events_pb2.MilestoneVerified:
    project, milestone = event.project, event.milestone
    return events_pb2.MilestoneVerified(
        project_id=str(project.id),
        milestone_id=str(milestone.id),
        allocation_id=str(project.allocation_id),
        commune_id=str(project.commune_id),
        tranche=money(milestone.tranche_minor, milestone.currency),
        verified_by=event.verified_by,
    )


@translates(MilestoneFunded)
def milestone_funded(event: MilestoneFunded) -> events_pb2.MilestoneFunded:
    return events_pb2.MilestoneFunded(
        project_id=str(event.project_id),
        milestone_id=str(event.milestone_id),
        disbursement_id=str(event.disbursement_id),
    )
