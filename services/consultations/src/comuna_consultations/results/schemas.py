"""Request and response bodies of the results slice."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from comuna_consultations.transport import ConsultationOut, Strict


class CandidateResultOut(BaseModel):
    candidate_id: uuid.UUID
    title: str
    votes: int
    rank: int
    assembly_priority: int


class SubtotalOut(BaseModel):
    channel: str
    table_id: uuid.UUID | None
    votes: dict[uuid.UUID, int]
    blank: int
    null: int
    participations: int


class CertificationOut(BaseModel):
    version: int
    supersedes: int | None
    reason: str | None
    certified_at: datetime
    certified_by: str
    tie_break: list[str]


class CommuneResultOut(BaseModel):
    commune_id: uuid.UUID
    commune_code: str
    commune_name: str
    # Ballots cast: votes for candidates + blank + null.
    ballots: int
    blank: int
    null: int
    participations: int
    roll_size: int
    # participations / roll_size (0 when the commune's roll is empty).
    turnout: float
    conflicts: int
    # Of those, the conflicts whose second ballot is in the count (from an offline table): the
    # ones that gate certification when they reach the margin.
    counted_conflicts: int
    winner_candidate_id: uuid.UUID | None
    candidates: list[CandidateResultOut]
    subtotals: list[SubtotalOut]
    # None: counted now, not certified yet.
    certification: CertificationOut | None


class ResultsOut(BaseModel):
    consultation_id: uuid.UUID
    code: str
    # Set once every voting commune is certified.
    certified_at: datetime | None
    # Over the certified communes listed.
    ballots: int
    communes: list[CommuneResultOut]


class BlockedCommuneOut(BaseModel):
    commune_id: uuid.UUID
    commune_code: str
    code: str
    detail: str


class CertifiedCommuneOut(BaseModel):
    """A commune certified by a run (its full result: GET .../communes/{id}/results)."""

    commune_id: uuid.UUID
    commune_code: str
    version: int
    ballots: int
    winner_candidate_id: uuid.UUID | None


class CertificationRunOut(ConsultationOut):
    certified_communes: list[CertifiedCommuneOut]
    blocked_communes: list[BlockedCommuneOut]


class ReasonIn(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class ConflictDecisionOut(BaseModel):
    commune_id: uuid.UUID
    conflicts: int
    margin: int
    decided_at: datetime
    decided_by: str
    reason: str


class TieBreakIn(Strict):
    rules: list[str] = Field(min_length=1, max_length=8)


class TieBreakOut(BaseModel):
    rules: list[str]
    # Hex of the 32-byte seed, generated when the consultation opened.
    draw_seed: str
    draw: str = "HMAC-SHA256(draw_seed, candidate id as 16 bytes), lower digest first"
