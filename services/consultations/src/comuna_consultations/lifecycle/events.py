"""What the lifecycle slice announces, as plain values (see `lifecycle/messages.py`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from comuna_consultations.domain.phases import Schedule


@dataclass(frozen=True)
class ConsultationOpened:
    consultation_id: uuid.UUID
    code: str
    commune_count: int
    schedule: Schedule
    max_candidates: int
    funds_per_commune: int
    funds_currency: str


@dataclass(frozen=True)
class CandidateRecorded:
    consultation_id: uuid.UUID
    candidate_id: uuid.UUID
    commune_id: uuid.UUID
    title: str
    assembly_priority: int
    category: str
    estimated_cost: int
    currency: str
    proposal_id: uuid.UUID | None = None
    proposing_council_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ScheduleAmended:
    consultation_id: uuid.UUID
    amendment_id: uuid.UUID
    schedule: Schedule
    changed: tuple[str, ...]
    reason: str
    amended_by: str


@dataclass(frozen=True)
class CommuneHeld:
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    kind: str
    voting_opens_at: datetime | None
    voting_closes_at: datetime | None
    reason: str
    held_by: str
