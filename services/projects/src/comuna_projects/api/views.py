"""Turn stored projects and their records into REST response bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from comuna_projects.api.schemas import (
    ChangeRequestOut,
    ExpenditureOut,
    FunderShare,
    MilestoneOut,
    MilestoneReturnOut,
    OversightReportFull,
    OversightReportOut,
    PlannedMilestoneIn,
    PlanRevisionOut,
    ProgressReportOut,
    ProjectDetail,
    ProjectSummary,
)
from comuna_projects.storage.models import (
    ChangeRequest,
    Expenditure,
    Milestone,
    MilestoneReturn,
    OversightReport,
    PlanRevision,
    ProgressReport,
    Project,
)
from comuna_projects.vocabulary import MilestoneStatus, ReportKind, ReportState, RequestState, Stage


def milestone_out(m: Milestone) -> MilestoneOut:
    return MilestoneOut(
        id=m.id,
        sequence=m.sequence,
        title=m.title,
        due_on=m.due_on,
        tranche_minor=m.tranche_minor,
        currency=m.currency,
        status=MilestoneStatus(m.status),
        reported_by=m.reported_by,
        reported_at=m.reported_at,
        report_note=m.report_note,
        verified_by=m.verified_by,
        verified_at=m.verified_at,
        verification_note=m.verification_note,
        funded_at=m.funded_at,
        disbursement_id=m.disbursement_id,
        disbursed_minor=m.funded_minor,
        disbursement_rejected_reason=m.disbursement_rejected_reason,
        disbursement_rejected_at=m.disbursement_rejected_at,
    )


def project_summary(p: Project) -> ProjectSummary:
    return ProjectSummary(
        id=p.id,
        allocation_id=p.allocation_id,
        consultation_id=p.consultation_id,
        commune_id=p.commune_id,
        commune_code=p.commune_code,
        state_code=p.state_code,
        municipality_code=p.municipality_code,
        candidate_id=p.candidate_id,
        category=p.category,
        title=p.title,
        status=Stage(p.status),
        budget_minor=p.budget_minor,
        currency=p.currency,
        funders=[FunderShare(source=f["source"], amount_minor=f["amount_minor"]) for f in p.funders],
        spokespeople=list(p.spokespeople),
        disbursed_minor=p.disbursed_minor,
        spent_minor=p.spent_minor,
        percent_complete=p.percent_complete,
        plan_revision=p.plan_revision,
        created_at=p.created_at,
        started_at=p.started_at,
        last_report_at=p.last_report_at,
        stalled_since=p.stalled_since,
        stall_reasons=list(p.stall_reasons),
        completed_at=p.completed_at,
        cancelled_at=p.cancelled_at,
        cancel_reason=p.cancel_reason,
    )


def project_detail(p: Project, milestones: Sequence[Milestone]) -> ProjectDetail:
    return ProjectDetail(**project_summary(p).model_dump(), milestones=[milestone_out(m) for m in milestones])


def _planned(milestones: Sequence[dict[str, Any]]) -> list[PlannedMilestoneIn]:
    return [PlannedMilestoneIn.model_validate(m) for m in milestones]


def return_out(r: MilestoneReturn) -> MilestoneReturnOut:
    return MilestoneReturnOut(
        id=r.id,
        milestone_id=r.milestone_id,
        milestone_title=r.milestone_title,
        reported_by=r.reported_by,
        reported_at=r.reported_at,
        report_note=r.report_note,
        returned_by=r.returned_by,
        returned_at=r.returned_at,
        note=r.note,
    )


def revision_out(r: PlanRevision) -> PlanRevisionOut:
    return PlanRevisionOut(
        revision=r.revision,
        milestones=_planned(r.milestones),
        made_by=r.made_by,
        reason=r.reason,
        change_request_id=r.change_request_id,
        made_at=r.made_at,
    )


def change_request_out(r: ChangeRequest) -> ChangeRequestOut:
    return ChangeRequestOut(
        id=r.id,
        project_id=r.project_id,
        base_revision=r.base_revision,
        milestones=_planned(r.milestones),
        reason=r.reason,
        requested_by=r.requested_by,
        requested_at=r.requested_at,
        state=RequestState(r.state),
        decided_by=r.decided_by,
        decided_at=r.decided_at,
        decision_note=r.decision_note,
    )


def progress_out(r: ProgressReport, evidence: Sequence[str]) -> ProgressReportOut:
    return ProgressReportOut(
        id=r.id,
        project_id=r.project_id,
        percent_complete=r.percent_complete,
        text=r.text,
        reported_by=r.reported_by,
        reported_at=r.reported_at,
        evidence=list(evidence),
    )


def expenditure_out(e: Expenditure) -> ExpenditureOut:
    return ExpenditureOut(
        id=e.id,
        project_id=e.project_id,
        amount_minor=e.amount_minor,
        currency=e.currency,
        spent_on=e.spent_on,
        supplier=e.supplier,
        description=e.description,
        receipt_sha256=e.receipt_sha256,
        recorded_by=e.recorded_by,
        recorded_at=e.recorded_at,
    )


def oversight_out(r: OversightReport, evidence: Sequence[str]) -> OversightReportOut:
    return OversightReportOut(
        id=r.id,
        project_id=r.project_id,
        kind=ReportKind(r.kind),
        text=r.text,
        state=ReportState(r.state),
        filed_at=r.filed_at,
        answer=r.answer,
        answered_at=r.answered_at,
        closed_at=r.closed_at,
        evidence=list(evidence),
    )


def oversight_full(r: OversightReport, evidence: Sequence[str]) -> OversightReportFull:
    return OversightReportFull(
        **oversight_out(r, evidence).model_dump(),
        filed_by=r.filed_by,
        reviewed_by=r.reviewed_by,
        answered_by=r.answered_by,
    )
