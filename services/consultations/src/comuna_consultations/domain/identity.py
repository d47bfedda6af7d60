"""What consultations needs from identity, as the domain sees it: plain data and two questions.

`clients/identity.py` answers them over gRPC; the domain only knows these types, so it stays
free of gRPC and protobuf.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from comuna_consultations.vocabulary import IneligibilityReason


@dataclass(frozen=True, slots=True)
class CommuneRef:
    id: uuid.UUID
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Eligibility:
    eligible: bool
    # Why not, when not eligible; None otherwise.
    reason: IneligibilityReason | None
    voter_ref: str


class CommuneDirectory(Protocol):
    async def list_all_communes(self) -> list[CommuneRef]: ...


class EligibilityCheck(Protocol):
    async def check_eligibility(
        self, *, consultation_id: uuid.UUID, commune_id: uuid.UUID, national_id: str, as_of: datetime
    ) -> Eligibility: ...
