"""Request and response bodies of the projects REST API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from comuna_projects.vocabulary import MilestoneStatus, ReportKind, ReportState, RequestState, Stage

SHA256 = Field(pattern="^[0-9a-f]{64}$", description="Hex SHA-256 of an uploaded evidence file.")
Note = Field(min_length=1, max_length=2000)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- requests -------------------------------------------------------------------------------


class VerifyMilestoneIn(Strict):
    note: str = Field(
        min_length=1,
        max_length=2000,
        description="What the overseer saw: the evidence that the milestone's work is done.",
    )


class ReportMilestoneIn(Strict):
    note: str = Field(min_length=1, max_length=2000, description="What was done, for the overseer who verifies it.")


class PlannedMilestoneIn(Strict):
    title: str = Field(min_length=1, max_length=200)
    due_on: date
    share_minor: int = Field(gt=0, description="This milestone's share of the budget (its tranche), minor units.")


class PlanIn(Strict):
    milestones: list[PlannedMilestoneIn] = Field(min_length=1, max_length=20)
    reason: str = Field(min_length=1, max_length=2000, description="Why the plan is what it is (kept in its history).")


class StartIn(Strict):
    spokespeople: list[str] = Field(
        min_length=1, max_length=20, description="Public names of the spokespeople answerable for the project."
    )


class CancelIn(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class DecisionIn(Strict):
    note: str = Field(min_length=1, max_length=2000, description="Why the committee decided so (public).")


class ProgressIn(Strict):
    percent_complete: int = Field(ge=0, le=100, description="Physical progress of the whole project.")
    text: str = Field(min_length=1, max_length=10_000)
    evidence: list[str] = Field(default_factory=list, max_length=20, description="Hashes of uploaded files.")


class ExpenditureIn(Strict):
    expenditure_id: uuid.UUID | None = Field(
        default=None,
        description="Chosen by the client to make retries safe: the same id with the same expenditure answers "
        "the one recorded; with other details, 409 `expenditure_id_reused`.",
    )
    amount_minor: int = Field(gt=0, description="Minor units of `currency` (integers only).")
    currency: str = Field(pattern="^[A-Z]{3}$", examples=["USD"])
    spent_on: date
    supplier: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=2000)
    receipt_sha256: str = SHA256


class OversightReportIn(Strict):
    kind: ReportKind
    text: str = Field(min_length=1, max_length=10_000)
    evidence: list[str] = Field(default_factory=list, max_length=20)


class AnswerIn(Strict):
    answer: str = Field(min_length=1, max_length=10_000, description="Published with the report.")


# --- responses ------------------------------------------------------------------------------


class MilestoneOut(BaseModel):
    id: uuid.UUID
    sequence: int
    title: str
    due_on: date
    tranche_minor: int = Field(description="Released when this milestone is verified, in minor units of `currency`.")
    currency: str = Field(examples=["USD"])
    status: MilestoneStatus
    reported_by: str | None
    reported_at: datetime | None
    report_note: str | None
    verified_by: str | None
    verified_at: datetime | None
    verification_note: str | None
    funded_at: datetime | None
    disbursement_id: uuid.UUID | None
    disbursed_minor: int | None = Field(description="What funding reported as disbursed for this milestone.")
    disbursement_rejected_reason: str | None = Field(
        default=None,
        examples=["exceeds_allocation"],
        description="Why funding refused this verified milestone's tranche (the milestone stays verified).",
    )
    disbursement_rejected_at: datetime | None = Field(default=None, description="When funding refused it.")


class FunderShare(BaseModel):
    source: str = Field(description="The funding source (funding's `funding_source`).")
    amount_minor: int


class ProjectSummary(BaseModel):
    id: uuid.UUID
    allocation_id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    commune_code: str
    state_code: str | None
    municipality_code: str | None
    candidate_id: uuid.UUID | None
    category: str | None
    title: str
    status: Stage
    budget_minor: int = Field(description="The allocation, in integer minor units of `currency` (never a float).")
    currency: str = Field(description="ISO 4217 alphabetic code.", examples=["USD"])
    funders: list[FunderShare]
    spokespeople: list[str]
    disbursed_minor: int = Field(description="Disbursed to the commune so far, across all milestones.")
    spent_minor: int = Field(description="Spent so far (expenditures), never more than disbursed.")
    percent_complete: int = Field(description="Physical progress, from the latest progress report.")
    plan_revision: int
    created_at: datetime
    started_at: datetime | None
    last_report_at: datetime | None
    stalled_since: datetime | None
    stall_reasons: list[str]
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None


class ProjectDetail(ProjectSummary):
    milestones: list[MilestoneOut]


class ProjectPage(BaseModel):
    items: list[ProjectSummary]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class VerificationOut(BaseModel):
    project_id: uuid.UUID
    milestone: MilestoneOut


class MilestoneReturnOut(BaseModel):
    id: uuid.UUID
    milestone_id: uuid.UUID
    milestone_title: str
    reported_by: str
    reported_at: datetime
    report_note: str
    returned_by: str
    returned_at: datetime
    note: str = Field(description="Why the committee sent the report back.")


class PlanRevisionOut(BaseModel):
    revision: int
    milestones: list[PlannedMilestoneIn]
    made_by: str
    reason: str
    change_request_id: uuid.UUID | None
    made_at: datetime


class ChangeRequestOut(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    base_revision: int
    milestones: list[PlannedMilestoneIn]
    reason: str
    requested_by: str
    requested_at: datetime
    state: RequestState
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None


class EvidenceOut(BaseModel):
    sha256: str
    media_type: str
    size_bytes: int
    created: bool = Field(description="False when an identical file was already stored.")
    url: str = Field(description="Where the file is served, with its hash in an `ETag`.")


class ProgressReportOut(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    percent_complete: int
    text: str
    reported_by: str
    reported_at: datetime
    evidence: list[str]


class ExpenditureOut(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    amount_minor: int
    currency: str
    spent_on: date
    supplier: str
    description: str
    receipt_sha256: str
    recorded_by: str
    recorded_at: datetime


class OversightReportOut(BaseModel):
    """Public: who filed it is not shown (`OversightReportFull` for the committee and auditors)."""

    id: uuid.UUID
    project_id: uuid.UUID
    kind: ReportKind
    text: str
    state: ReportState
    filed_at: datetime
    answer: str | None
    answered_at: datetime | None
    closed_at: datetime | None
    evidence: list[str]


class OversightReportFull(OversightReportOut):
    filed_by: str
    reviewed_by: str | None
    answered_by: str | None


T = TypeVar("T")


class Items(BaseModel, Generic[T]):
    items: list[T]
