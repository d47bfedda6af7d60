"""Request and response bodies of the assemblies slice."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from comuna_consultations.transport import Strict
from comuna_consultations.vocabulary import ProposalCategory

SHA256_HEX = r"^[0-9a-f]{64}$"
CURRENCY = r"^[A-Z]{3}$"
MAX_MONEY = 2**53 - 1


class ProposalIn(Strict):
    title: str = Field(min_length=1, max_length=200)
    problem: str = Field(min_length=1, max_length=5000, description="The problem the proposal addresses.")
    category: ProposalCategory
    estimated_cost: int = Field(gt=0, le=MAX_MONEY, description="Minor units (cents) of `currency`.")
    currency: str = Field(default="USD", pattern=CURRENCY)
    proposing_council_id: uuid.UUID = Field(description="Identity's id of the council that proposes it.")


class AssemblySessionIn(Strict):
    council_id: uuid.UUID | None = Field(
        default=None, description="The council that met (one feeding the commune); null: the commune's assembly."
    )
    held_at: AwareDatetime
    place: str = Field(min_length=1, max_length=200)
    attendance: int = Field(ge=0, le=1_000_000)
    minutes: str = Field(min_length=1, max_length=100_000)
    minutes_sha256: str | None = Field(
        default=None, pattern=SHA256_HEX, description="SHA-256 (lowercase hex) of the signed minutes' document."
    )
    proposals: list[ProposalIn] = Field(default_factory=list, max_length=100)


class ProposalOut(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    commune_id: uuid.UUID
    title: str
    problem: str
    category: ProposalCategory
    estimated_cost: int
    currency: str
    proposing_council_id: uuid.UUID


class AssemblySessionOut(BaseModel):
    id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    council_id: uuid.UUID | None
    held_at: datetime
    place: str
    attendance: int
    minutes: str
    minutes_sha256: str | None
    recorded_by: str
    recorded_at: datetime
    proposals: list[ProposalOut]


class AssemblySessionList(BaseModel):
    items: list[AssemblySessionOut]


class ProposalList(BaseModel):
    items: list[ProposalOut]


class PrioritisationIn(Strict):
    proposal_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000, description="Priority 1 first.")


class PrioritisedCandidateOut(BaseModel):
    candidate_id: uuid.UUID
    proposal_id: uuid.UUID | None
    assembly_priority: int
    title: str
    category: ProposalCategory | None
    estimated_cost: int | None
    currency: str


class PrioritisationOut(BaseModel):
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    proposal_ids: list[uuid.UUID]
    recorded_by: str
    recorded_at: datetime
    candidates: list[PrioritisedCandidateOut]
