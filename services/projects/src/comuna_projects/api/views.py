"""Turn stored projects into REST response bodies."""

from __future__ import annotations

from collections.abc import Sequence

from comuna_projects.api.schemas import MilestoneOut, ProjectDetail, ProjectSummary
from comuna_projects.storage.models import Milestone, Project
from comuna_projects.vocabulary import MilestoneStatus, ProjectStatus


def milestone_out(m: Milestone) -> MilestoneOut:
    return MilestoneOut(
        id=m.id,
        sequence=m.sequence,
        title=m.title,
        tranche_minor=m.tranche_minor,
        currency=m.currency,
        status=MilestoneStatus(m.status),
        verified_by=m.verified_by,
        verified_at=m.verified_at,
        verification_note=m.verification_note,
        funded_at=m.funded_at,
        disbursement_id=m.disbursement_id,
        disbursed_minor=m.funded_minor,
        disbursement_rejected_reason=m.disbursement_rejected_reason,
        disbursement_rejected_at=m.disbursement_rejected_at,
    )


def project_summary(p: Project, milestones: Sequence[Milestone]) -> ProjectSummary:
    disbursed = sum(m.funded_minor or 0 for m in milestones)
    return ProjectSummary(
        id=p.id,
        allocation_id=p.allocation_id,
        consultation_id=p.consultation_id,
        commune_id=p.commune_id,
        commune_code=p.commune_code,
        candidate_id=p.candidate_id,
        title=p.title,
        status=ProjectStatus(p.status),
        budget_minor=p.budget_minor,
        currency=p.currency,
        disbursed_minor=disbursed,
        created_at=p.created_at,
        completed_at=p.completed_at,
    )


def project_detail(p: Project, milestones: Sequence[Milestone]) -> ProjectDetail:
    return ProjectDetail(
        **project_summary(p, milestones).model_dump(), milestones=[milestone_out(m) for m in milestones]
    )
