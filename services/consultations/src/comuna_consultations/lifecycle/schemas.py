"""Request and response bodies of the lifecycle slice."""

from __future__ import annotations

import uuid

from pydantic import AwareDatetime, BaseModel, Field

from comuna_consultations.transport import ConsultationOut, Strict

# ASCII digits only: `\d` would also accept other scripts' digits, which the database refuses.
CONSULTATION_CODE = r"^[0-9]{4}-Q[1-4]$"


class ConsultationIn(Strict):
    code: str = Field(pattern=CONSULTATION_CODE, examples=["2026-Q1"], description="Year and quarter.")
    title: str = Field(min_length=1, max_length=200)
    assemblies_open_at: AwareDatetime
    voting_opens_at: AwareDatetime
    voting_closes_at: AwareDatetime


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


class CandidateOut(BaseModel):
    id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    title: str
    description: str
    assembly_priority: int


class CandidateList(BaseModel):
    items: list[CandidateOut]
