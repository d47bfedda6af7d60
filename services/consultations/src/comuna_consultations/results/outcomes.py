"""The shapes of results as shown and announced, built once (from a fresh count or from a stored
certification) and read the same way everywhere (events, gRPC pages, REST bodies).

A nationwide result is several megabytes, more than NATS (1 MB) or gRPC (4 MB) carry by default
in one message, so it never travels whole: the events carry one commune each plus a small
summary, and gRPC serves it a page of communes at a time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from comuna_consultations.domain.ranking import RankedCandidate
from comuna_consultations.results.counting import CommuneResult, Subtotal
from comuna_consultations.results.storage import StoredCertification
from comuna_consultations.storage.models import ConsultationCommune


@dataclass(frozen=True, slots=True)
class Certification:
    version: int
    supersedes: int | None
    reason: str | None
    certified_at: datetime
    certified_by: str
    tie_break: list[str]


@dataclass(frozen=True, slots=True)
class CommuneOutcome:
    commune_id: uuid.UUID
    code: str
    name: str
    result: CommuneResult
    # None: counted now, not certified (shown only after the commune's voting closed).
    certification: Certification | None

    @property
    def ballots(self) -> int:
        return self.result.ballots

    @property
    def winner_candidate_id(self) -> uuid.UUID | None:
        return self.result.winner_candidate_id

    @property
    def candidates(self) -> list[RankedCandidate]:
        return self.result.ranked


def from_stored(commune: ConsultationCommune, stored: StoredCertification) -> CommuneOutcome:
    """A certified version as it was certified (stored ranks, never re-ranked on read)."""
    row = stored.row
    ranked = [
        RankedCandidate(cid, title, priority, votes, rank, estimated_cost=cost)
        for cid, title, priority, votes, rank, cost in stored.ranked
    ]
    top = ranked[0].votes if ranked else 0
    second = ranked[1].votes if len(ranked) > 1 else 0
    result = CommuneResult(
        commune_id=row.commune_id,
        ranked=ranked,
        winner_candidate_id=row.winner_candidate_id,
        margin=top - second,
        blank=row.blank,
        null=row.null_votes,
        participations=row.participations,
        roll_size=row.roll_size,
        conflicts=row.conflicts,
        counted_conflicts=row.counted_conflicts,
        subtotals=[Subtotal.from_json(s) for s in row.subtotals],
    )
    certification = Certification(
        row.version, row.supersedes, row.reason, row.certified_at, row.certified_by, list(row.tie_break)
    )
    return CommuneOutcome(commune.commune_id, commune.code, commune.name, result, certification)


@dataclass(frozen=True, slots=True)
class Summary:
    """A consultation's certification: emitted once every voting commune is certified."""

    consultation_id: uuid.UUID
    code: str
    certified_at: datetime
    ballots: int
    commune_count: int
    communes_with_winner: int
