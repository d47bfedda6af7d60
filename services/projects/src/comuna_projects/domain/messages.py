"""Protobuf views of projects, shared by the events we publish and the gRPC API."""

from __future__ import annotations

from collections.abc import Sequence

from comuna.common.v1 import money_pb2
from comuna.projects.v1 import projects_pb2 as pb
from comuna_projects.storage.models import Milestone, Project

MILESTONE_STATUS = {
    "pending": pb.MILESTONE_STATUS_PENDING,
    "verified": pb.MILESTONE_STATUS_VERIFIED,
    "funded": pb.MILESTONE_STATUS_FUNDED,
}


def money(amount_minor: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount_minor, currency=currency)


def milestone_message(milestone: Milestone) -> pb.Milestone:
    message = pb.Milestone(
        milestone_id=str(milestone.id),
        sequence=milestone.sequence,
        title=milestone.title,
        tranche=money(milestone.tranche_minor, milestone.currency),
        status=MILESTONE_STATUS[milestone.status],
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
