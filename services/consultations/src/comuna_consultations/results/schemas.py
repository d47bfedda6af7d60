"""Response bodies of the results slice."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


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
