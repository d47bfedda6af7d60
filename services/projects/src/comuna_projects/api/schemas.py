"""Request and response bodies of the projects REST API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from comuna_projects.vocabulary import MilestoneStatus, ProjectStatus


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class VerifyMilestoneIn(Strict):
    note: str = Field(
        min_length=1,
        max_length=2000,
        description="What the overseer saw: the evidence that the milestone's work is done.",
    )


class MilestoneOut(BaseModel):
    id: uuid.UUID
    sequence: int
    title: str
    tranche_minor: int = Field(description="Released when this milestone is verified, in minor units of `currency`.")
    currency: str = Field(examples=["USD"])
    status: MilestoneStatus
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


class ProjectSummary(BaseModel):
    id: uuid.UUID
    allocation_id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    commune_code: str
    candidate_id: uuid.UUID | None
    title: str
    status: ProjectStatus
    budget_minor: int = Field(description="The allocation, in integer minor units of `currency` (never a float).")
    currency: str = Field(description="ISO 4217 alphabetic code.", examples=["USD"])
    disbursed_minor: int = Field(description="Disbursed to the commune so far, across all milestones.")
    created_at: datetime
    completed_at: datetime | None


class ProjectDetail(ProjectSummary):
    milestones: list[MilestoneOut]


class ProjectPage(BaseModel):
    items: list[ProjectSummary]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class VerificationOut(BaseModel):
    project_id: uuid.UUID
    milestone: MilestoneOut
