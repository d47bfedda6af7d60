"""What the assemblies slice announces, as plain values (see `assemblies/messages.py`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AssemblySessionRecorded:
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    session_id: uuid.UUID
    council_id: uuid.UUID | None
    held_at: datetime
    attendance: int
    minutes_sha256: str | None
    proposal_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class CommunePrioritised:
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    proposal_ids: tuple[uuid.UUID, ...]
    candidate_ids: tuple[uuid.UUID, ...]
    recorded_by: str
