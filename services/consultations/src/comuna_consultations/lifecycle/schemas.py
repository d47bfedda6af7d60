"""Request and response bodies of the lifecycle slice."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from comuna_consultations.transport import ConsultationOut, Strict
from comuna_consultations.vocabulary import HoldKind, ProposalCategory

# ASCII digits only: `\d` would also accept other scripts' digits, which the database refuses.
CONSULTATION_CODE = r"^[0-9]{4}-Q[1-4]$"
CURRENCY = r"^[A-Z]{3}$"
# Integer minor units; under 2^53 so that every JSON client reads it exactly.
MAX_MONEY = 2**53 - 1


class ConsultationIn(Strict):
    code: str = Field(pattern=CONSULTATION_CODE, examples=["2026-Q1"], description="Year and quarter.")
    title: str = Field(min_length=1, max_length=200)
    assemblies_open_at: AwareDatetime
    candidates_close_at: AwareDatetime
    roll_cutoff_at: AwareDatetime
    voting_opens_at: AwareDatetime
    voting_closes_at: AwareDatetime
    certification_opens_at: AwareDatetime
    max_candidates: int = Field(default=10, ge=1, le=1000, description="Most candidates a commune may list.")
    funds_per_commune: int = Field(
        default=1_000_000, gt=0, le=MAX_MONEY, description="Funds announced per commune, minor units (cents)."
    )
    funds_currency: str = Field(default="USD", pattern=CURRENCY)


class ScheduleAmendmentIn(Strict):
    """Only the dates that move; each must be in the future, and so must the date it replaces."""

    reason: str = Field(min_length=1, max_length=2000)
    assemblies_open_at: AwareDatetime | None = None
    candidates_close_at: AwareDatetime | None = None
    roll_cutoff_at: AwareDatetime | None = None
    voting_opens_at: AwareDatetime | None = None
    voting_closes_at: AwareDatetime | None = None
    certification_opens_at: AwareDatetime | None = None

    def changes(self) -> dict[str, datetime]:
        dates = self.model_dump(exclude={"reason"}, exclude_none=True)
        return {name: value for name, value in dates.items() if isinstance(value, datetime)}


class AmendmentOut(BaseModel):
    id: uuid.UUID
    changes: dict[str, list[str]] = Field(description="date name -> [before, after]")
    reason: str
    amended_by: str
    amended_at: datetime


class AmendmentList(BaseModel):
    items: list[AmendmentOut]


class HoldIn(Strict):
    kind: HoldKind
    reason: str = Field(min_length=1, max_length=2000)
    voting_opens_at: AwareDatetime | None = Field(default=None, description="postponed only")
    voting_closes_at: AwareDatetime | None = Field(default=None, description="postponed only")


class HoldOut(BaseModel):
    commune_id: uuid.UUID
    kind: HoldKind
    voting_opens_at: datetime | None
    voting_closes_at: datetime | None
    reason: str
    held_by: str
    held_at: datetime


class HoldList(BaseModel):
    items: list[HoldOut]


class ConsultationPage(BaseModel):
    items: list[ConsultationOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class CommuneOut(BaseModel):
    commune_id: uuid.UUID
    code: str
    name: str


class CommunePage(BaseModel):
    items: list[CommuneOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class CandidateIn(Strict):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    assembly_priority: int = Field(ge=1, le=1000, description="The assembly's order of priority, 1 = first.")
    category: ProposalCategory
    estimated_cost: int = Field(gt=0, le=MAX_MONEY, description="Minor units (cents) of `currency`.")
    currency: str = Field(default="USD", pattern=CURRENCY)


class CandidateOut(BaseModel):
    id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    title: str
    description: str
    assembly_priority: int
    category: ProposalCategory | None
    estimated_cost: int | None
    currency: str
    proposal_id: uuid.UUID | None
    proposing_council_id: uuid.UUID | None
    registered_at: datetime


class CandidateList(BaseModel):
    items: list[CandidateOut]
