"""Projects' protobuf edge: the views shared by the events we publish and the gRPC API, and the
translations of the domain's events (registered when the service is assembled)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from comuna.common.v1 import money_pb2
from comuna.projects.v1 import events_pb2
from comuna.projects.v1 import projects_pb2 as pb
from comuna_platform.events.translation import translates
from comuna_projects.domain.events import (
    ExpenditureRecorded,
    MilestoneFunded,
    MilestoneReported,
    MilestoneReturned,
    MilestoneVerified,
    OversightReportChanged,
    PlanChanged,
    ProgressReported,
    ProjectCancelled,
    ProjectCompleted,
    ProjectCreated,
    ProjectResumed,
    ProjectStalled,
    ProjectStarted,
)
from comuna_projects.storage.models import Milestone, Project
from comuna_projects.vocabulary import MilestoneStatus

MILESTONE_STATUS = {
    MilestoneStatus.PENDING: pb.MILESTONE_STATUS_PENDING,
    MilestoneStatus.REPORTED: pb.MILESTONE_STATUS_REPORTED,
    MilestoneStatus.VERIFIED: pb.MILESTONE_STATUS_VERIFIED,
    MilestoneStatus.FUNDED: pb.MILESTONE_STATUS_FUNDED,
}


def timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


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
        due_on=milestone.due_on.isoformat(),
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
        stage=project.status,
        plan_revision=project.plan_revision,
        category=project.category or "",
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
        plan_revision=project.plan_revision,
    )


@translates(MilestoneFunded)
def milestone_funded(event: MilestoneFunded) -> events_pb2.MilestoneFunded:
    return events_pb2.MilestoneFunded(
        project_id=str(event.project_id),
        milestone_id=str(event.milestone_id),
        disbursement_id=str(event.disbursement_id),
    )


@translates(ProjectStarted)
def project_started(event: ProjectStarted) -> events_pb2.ProjectStarted:
    project = event.project
    assert project.started_at is not None
    return events_pb2.ProjectStarted(
        project_id=str(project.id), spokespeople=project.spokespeople, started_at=timestamp(project.started_at)
    )


@translates(PlanChanged)
def plan_changed(event: PlanChanged) -> events_pb2.PlanChanged:
    return events_pb2.PlanChanged(
        project=project_message(event.project, event.milestones),
        changed_by=event.changed_by,
        reason=event.reason,
        change_request_id=str(event.change_request_id or ""),
        removed_milestone_ids=[str(m) for m in event.removed_milestone_ids],
    )


@translates(MilestoneReported)
def milestone_reported(event: MilestoneReported) -> events_pb2.MilestoneReported:
    milestone = event.milestone
    assert milestone.reported_by is not None and milestone.reported_at is not None
    return events_pb2.MilestoneReported(
        project_id=str(event.project.id),
        milestone_id=str(milestone.id),
        reported_by=milestone.reported_by,
        reported_at=timestamp(milestone.reported_at),
    )


@translates(MilestoneReturned)
def milestone_returned(event: MilestoneReturned) -> events_pb2.MilestoneReturned:
    return events_pb2.MilestoneReturned(
        project_id=str(event.project.id),
        milestone_id=str(event.milestone.id),
        returned_by=event.returned_by,
        note=event.note,
    )


@translates(ProgressReported)
def progress_reported(event: ProgressReported) -> events_pb2.ProgressReported:
    report = event.report
    return events_pb2.ProgressReported(
        project_id=str(report.project_id),
        report_id=str(report.id),
        percent_complete=report.percent_complete,
        evidence_sha256=list(event.evidence),
        reported_at=timestamp(report.reported_at),
    )


@translates(ProjectStalled)
def project_stalled(event: ProjectStalled) -> events_pb2.ProjectStalled:
    project = event.project
    assert project.stalled_since is not None
    return events_pb2.ProjectStalled(
        project_id=str(project.id), reasons=project.stall_reasons, stalled_at=timestamp(project.stalled_since)
    )


@translates(ProjectResumed)
def project_resumed(event: ProjectResumed) -> events_pb2.ProjectResumed:
    return events_pb2.ProjectResumed(
        project_id=str(event.project.id), report_id=str(event.report_id), resumed_at=timestamp(event.at)
    )


@translates(ProjectCompleted)
def project_completed(event: ProjectCompleted) -> events_pb2.ProjectCompleted:
    project = event.project
    assert project.completed_at is not None
    return events_pb2.ProjectCompleted(
        project_id=str(project.id),
        spent=money(project.spent_minor, project.currency),
        completed_at=timestamp(project.completed_at),
    )


@translates(ProjectCancelled)
def project_cancelled(event: ProjectCancelled) -> events_pb2.ProjectCancelled:
    project = event.project
    assert project.cancelled_at is not None
    return events_pb2.ProjectCancelled(
        project_id=str(project.id),
        allocation_id=str(project.allocation_id),
        commune_id=str(project.commune_id),
        reason=project.cancel_reason or "",
        cancelled_at=timestamp(project.cancelled_at),
    )


@translates(ExpenditureRecorded)
def expenditure_recorded(event: ExpenditureRecorded) -> events_pb2.ExpenditureRecorded:
    spent = event.expenditure
    return events_pb2.ExpenditureRecorded(
        project_id=str(spent.project_id),
        expenditure_id=str(spent.id),
        amount=money(spent.amount_minor, spent.currency),
        spent_on=spent.spent_on.isoformat(),
        supplier=spent.supplier,
        receipt_sha256=spent.receipt_sha256,
    )


@translates(OversightReportChanged)
def oversight_report_changed(event: OversightReportChanged) -> events_pb2.OversightReportChanged:
    report = event.report
    return events_pb2.OversightReportChanged(
        project_id=str(report.project_id),
        report_id=str(report.id),
        kind=report.kind,
        state=report.state,
        answer=report.answer or "",
        changed_at=timestamp(event.at),
    )
