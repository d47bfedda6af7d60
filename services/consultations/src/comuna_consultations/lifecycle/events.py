"""What the lifecycle slice announces, as plain values (see `lifecycle/messages.py`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ConsultationOpened:
    consultation_id: uuid.UUID
    code: str
    commune_count: int
    voting_opens_at: datetime
    voting_closes_at: datetime


@dataclass(frozen=True)
class CandidateRecorded:
    consultation_id: uuid.UUID
    candidate_id: uuid.UUID
    commune_id: uuid.UUID
    title: str
    assembly_priority: int


@dataclass(frozen=True)
class ConsultationClosed:
    consultation_id: uuid.UUID
    ballots: int
