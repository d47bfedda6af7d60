"""What the results slice announces, as plain values (see `results/messages.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from comuna_consultations.results.outcomes import CertifiedResults, CommuneOutcome, Summary


@dataclass(frozen=True)
class CommuneResultCertified:
    results: CertifiedResults
    commune: CommuneOutcome


@dataclass(frozen=True)
class ConsultationCertified:
    summary: Summary
