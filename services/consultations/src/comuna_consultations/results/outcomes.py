"""The shapes of certified results, computed once from the ballots and read back the same way
everywhere (events, gRPC pages, REST bodies), so they cannot drift.

A nationwide result is several megabytes, more than NATS (1 MB) or gRPC (4 MB) carry by default
in one message, so it never travels whole: the events carry one commune each plus a small
summary, and gRPC serves it a page of communes at a time.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from comuna_consultations.domain.ranking import RankedCandidate, Tally, rank_candidates, winner_of
from comuna_consultations.results.storage import CandidateRow, ResultRow
from comuna_consultations.storage.models import ConsultationCommune


@dataclass(frozen=True, slots=True)
class CommuneOutcome:
    commune_id: uuid.UUID
    code: str
    name: str
    ballots: int
    winner_candidate_id: uuid.UUID | None
    candidates: list[RankedCandidate]


@dataclass(frozen=True, slots=True)
class CertifiedResults:
    consultation_id: uuid.UUID
    code: str
    certified_at: datetime
    ballots: int
    communes: list[CommuneOutcome]


def outcomes(
    communes: Iterable[ConsultationCommune],
    candidates: Iterable[CandidateRow],
    votes: Mapping[uuid.UUID, int],
) -> list[CommuneOutcome]:
    """Rank every commune's candidates; communes with no candidates are listed too (empty)."""
    by_commune: dict[uuid.UUID, list[Tally]] = defaultdict(list)
    for c in candidates:
        by_commune[c.commune_id].append(Tally(c.id, c.title, c.assembly_priority, votes.get(c.id, 0)))
    result = []
    for commune in sorted(communes, key=lambda c: c.code):
        ranked = rank_candidates(by_commune.get(commune.commune_id, ()))
        result.append(
            CommuneOutcome(
                commune.commune_id,
                commune.code,
                commune.name,
                sum(c.votes for c in ranked),
                winner_of(ranked),
                ranked,
            )
        )
    return result


def from_stored(communes: Iterable[ConsultationCommune], rows: Sequence[ResultRow]) -> list[CommuneOutcome]:
    """Outcomes as certified (stored ranks, never re-ranked on read)."""
    by_commune: dict[uuid.UUID, list[RankedCandidate]] = defaultdict(list)
    for r in rows:
        by_commune[r.commune_id].append(RankedCandidate(r.candidate_id, r.title, r.assembly_priority, r.votes, r.rank))
    result = []
    for commune in sorted(communes, key=lambda c: c.code):
        ranked = sorted(by_commune.get(commune.commune_id, ()), key=lambda c: c.rank)
        result.append(
            CommuneOutcome(
                commune.commune_id,
                commune.code,
                commune.name,
                sum(c.votes for c in ranked),
                winner_of(ranked),
                ranked,
            )
        )
    return result


@dataclass(frozen=True, slots=True)
class Summary:
    consultation_id: uuid.UUID
    code: str
    certified_at: datetime
    ballots: int
    commune_count: int
    communes_with_winner: int


def summary_of(results: CertifiedResults) -> Summary:
    return Summary(
        results.consultation_id,
        results.code,
        results.certified_at,
        results.ballots,
        len(results.communes),
        sum(1 for c in results.communes if c.winner_candidate_id is not None),
    )
