"""What the results slice announces, as plain values (see `results/messages.py`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from comuna_consultations.results.outcomes import CommuneOutcome, Summary


@dataclass(frozen=True)
class CommuneResultCertified:
    """A commune's certified version: version 1, or a recount's n+1 superseding n."""

    consultation_id: uuid.UUID
    consultation_code: str
    commune: CommuneOutcome
    funds_currency: str = "USD"


@dataclass(frozen=True)
class ConsultationCertified:
    summary: Summary
