"""Request and response bodies of the consultations REST API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# ASCII digits only, as the database CHECK says: `\d` also accepts `２０４０` (fullwidth).
CONSULTATION_CODE = r"^[0-9]{4}-Q[1-4]$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ConsultationIn(Strict):
    code: str = Field(pattern=CONSULTATION_CODE, examples=["2026-Q1"], description="Year and quarter.")
    title: str = Field(min_length=1, max_length=200)
    assemblies_open_at: AwareDatetime
    voting_opens_at: AwareDatetime
    voting_closes_at: AwareDatetime


class ConsultationOut(BaseModel):
    id: uuid.UUID
    code: str
    title: str
    status: str = Field(description="assembly, voting, closed or certified")
    assemblies_open_at: datetime
    voting_opens_at: datetime
    voting_closes_at: datetime
    commune_count: int
    voting_started_at: datetime | None
    closed_at: datetime | None
    certified_at: datetime | None


class ConsultationPage(BaseModel):
    items: list[ConsultationOut]
    next_after: str | None = Field(description="Pass as `after` to get the next page.")


class CommuneOut(BaseModel):
    commune_id: uuid.UUID
    code: str
    name: str


class CommunePage(BaseModel):
    items: list[CommuneOut]
    next_after: str | None = Field(description="Pass as `after` to get the next page.")


class CandidateIn(Strict):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    assembly_priority: int = Field(ge=1, le=1000, description="The assembly's order of priority, 1 = first.")


class CandidateOut(BaseModel):
    id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    title: str
    description: str
    assembly_priority: int


class CandidateList(BaseModel):
    items: list[CandidateOut]


class BallotIn(Strict):
    commune_id: uuid.UUID
    candidate_id: uuid.UUID
    national_id: str = Field(min_length=1, max_length=20, description="Sent to identity only; never stored here.")
    channel: Literal["table", "online"]


class BallotOut(BaseModel):
    ballot_id: uuid.UUID
    receipt: str = Field(description="The ballot id: proves the ballot was stored, does not reveal the choice.")


class ReceiptOut(BaseModel):
    receipt: str
    recorded: bool


class CandidateResultOut(BaseModel):
    candidate_id: uuid.UUID
    title: str
    votes: int
    rank: int
    assembly_priority: int


class CommuneResultOut(BaseModel):
    commune_id: uuid.UUID
    commune_code: str
    commune_name: str
    ballots: int
    winner_candidate_id: uuid.UUID | None
    candidates: list[CandidateResultOut]


class ResultsOut(BaseModel):
    consultation_id: uuid.UUID
    code: str
    certified_at: datetime
    ballots: int
    communes: list[CommuneResultOut]
