"""Certified results: computed once from the ballots, then read back the same way everywhere.

Certification and reading share one shape (`CertifiedResults`), and one conversion to the
protobuf `ConsultationCertified`, so the event, the gRPC answer and the REST body can not drift.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from comuna.consultations.v1 import events_pb2
from comuna_consultations.domain.lifecycle import Status, require_status
from comuna_consultations.domain.ranking import RankedCandidate, Tally, rank_candidates, winner_of
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import ConsultationCommune
from comuna_platform.errors import NotFound


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
    candidates: Iterable[repository.CandidateRow],
    votes: Mapping[uuid.UUID, int],
) -> list[CommuneOutcome]:
    """Rank every commune's candidates; communes with no candidates are listed too (empty)."""
    by_commune: dict[uuid.UUID, list[Tally]] = defaultdict(list)
    for c in candidates:
        by_commune[c.commune_id].append(Tally(c.id, c.title, c.assembly_priority, votes.get(c.id, 0)))
    result = []
    for commune in sorted(communes, key=lambda c: c.code):
        ranked = rank_candidates(by_commune.get(commune.commune_id, ()))
        result.append(CommuneOutcome(
            commune.commune_id, commune.code, commune.name, sum(c.votes for c in ranked), winner_of(ranked), ranked,
        ))
    return result


def from_stored(
    communes: Iterable[ConsultationCommune], rows: Sequence[repository.ResultRow]
) -> list[CommuneOutcome]:
    """Outcomes as certified (stored ranks, never re-ranked on read)."""
    by_commune: dict[uuid.UUID, list[RankedCandidate]] = defaultdict(list)
    for r in rows:
        by_commune[r.commune_id].append(RankedCandidate(r.candidate_id, r.title, r.assembly_priority, r.votes, r.rank))
    result = []
    for commune in sorted(communes, key=lambda c: c.code):
        ranked = sorted(by_commune.get(commune.commune_id, ()), key=lambda c: c.rank)
        result.append(CommuneOutcome(
            commune.commune_id, commune.code, commune.name, sum(c.votes for c in ranked), winner_of(ranked), ranked,
        ))
    return result


async def load_certified(
    session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID | None = None
) -> CertifiedResults:
    """The certified results (of one commune if given); 404 if unknown, 409 before certification."""
    consultation = await repository.consultation_by_id(session, consultation_id)
    if consultation is None:
        raise NotFound(f"consultation {consultation_id} does not exist", code="consultation_not_found")
    require_status(consultation.status, Status.CERTIFIED)
    assert consultation.certified_at is not None
    if commune_id is None:
        communes: Sequence[ConsultationCommune] = await repository.communes_of(session, consultation_id)
    else:
        one = await repository.commune(session, consultation_id, commune_id)
        if one is None:
            raise NotFound(f"commune {commune_id} is not part of this consultation", code="commune_not_found")
        communes = [one]
    rows = await repository.stored_results(session, consultation_id, commune_id)
    outcome = from_stored(communes, rows)
    total = (sum(c.ballots for c in outcome) if commune_id is None
             else await repository.count_ballots(session, consultation_id))
    return CertifiedResults(consultation.id, consultation.code, consultation.certified_at, total, outcome)


def to_proto(results: CertifiedResults) -> events_pb2.ConsultationCertified:
    message = events_pb2.ConsultationCertified(
        consultation_id=str(results.consultation_id), code=results.code, ballots=results.ballots,
        communes=[
            events_pb2.CommuneResult(
                commune_id=str(c.commune_id), commune_code=c.code, commune_name=c.name, ballots=c.ballots,
                winner_candidate_id=str(c.winner_candidate_id) if c.winner_candidate_id else "",
                candidates=[
                    events_pb2.CandidateResult(candidate_id=str(k.candidate_id), title=k.title, votes=k.votes,
                                               rank=k.rank, assembly_priority=k.assembly_priority)
                    for k in c.candidates
                ],
            )
            for c in results.communes
        ],
    )
    message.certified_at.FromDatetime(results.certified_at)
    return message
