"""What projects announces, as plain values; `comuna_projects.messages` turns them into the
event messages of `proto/comuna/projects/v1/events.proto`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from comuna_projects.storage.models import Expenditure, Milestone, OversightReport, ProgressReport, Project


@dataclass(frozen=True)
class ProjectCreated:
    project: Project
    milestones: Sequence[Milestone]


@dataclass(frozen=True)
class ProjectStarted:
    project: Project


@dataclass(frozen=True)
class PlanChanged:
    project: Project
    milestones: Sequence[Milestone]
    changed_by: str
    reason: str
    change_request_id: uuid.UUID | None
    removed_milestone_ids: Sequence[uuid.UUID]


@dataclass(frozen=True)
class MilestoneReported:
    project: Project
    milestone: Milestone


@dataclass(frozen=True)
class MilestoneReturned:
    project: Project
    milestone: Milestone
    returned_by: str
    note: str


@dataclass(frozen=True)
class MilestoneVerified:
    project: Project
    milestone: Milestone
    verified_by: str


@dataclass(frozen=True)
class MilestoneFunded:
    project_id: uuid.UUID
    milestone_id: uuid.UUID
    disbursement_id: uuid.UUID


@dataclass(frozen=True)
class ProgressReported:
    report: ProgressReport
    evidence: Sequence[str]


@dataclass(frozen=True)
class ProjectStalled:
    project: Project


@dataclass(frozen=True)
class ProjectResumed:
    project: Project
    report_id: uuid.UUID
    at: datetime


@dataclass(frozen=True)
class ProjectCompleted:
    project: Project


@dataclass(frozen=True)
class ProjectCancelled:
    project: Project


@dataclass(frozen=True)
class ExpenditureRecorded:
    expenditure: Expenditure


@dataclass(frozen=True)
class OversightReportChanged:
    report: OversightReport
    at: datetime
