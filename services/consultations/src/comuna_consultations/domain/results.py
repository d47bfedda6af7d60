"""Certified results: computed once from the ballots, then read back the same way everywhere.

Certification and reading share one shape (`CommuneOutcome`), and one conversion to the
protobuf `CommuneResult`, so the events, the gRPC pages and the REST body can not drift.

A nationwide result is several megabytes, more than NATS (1 MB) or gRPC (4 MB) carry by default
in one message, so it never travels whole: the events carry one commune each plus a small
summary (`ConsultationCertified`), and gRPC serves it a page of communes at a time.
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
from comuna_platform.errors import InvalidInput, NotFound


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


def from_stored(communes: Iterable[ConsultationCommune], rows: Sequence[repository.ResultRow]) -> list[CommuneOutcome]:
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
    rows = await repository.stored_results(
        session, consultation_id, commune_ids=None if commune_id is None else [commune_id]
    )
    outcome = from_stored(communes, rows)
    total = (
        sum(c.ballots for c in outcome)
        if commune_id is None
        else await repository.count_ballots(session, consultation_id)
    )
    return CertifiedResults(consultation.id, consultation.code, consultation.certified_at, total, outcome)


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


def summary_proto(summary: Summary) -> events_pb2.ConsultationCertified:
    message = events_pb2.ConsultationCertified(
        consultation_id=str(summary.consultation_id),
        code=summary.code,
        ballots=summary.ballots,
        commune_count=summary.commune_count,
        communes_with_winner=summary.communes_with_winner,
    )
    message.certified_at.FromDatetime(summary.certified_at)
    return message


def commune_proto(c: CommuneOutcome) -> events_pb2.CommuneResult:
    return events_pb2.CommuneResult(
        commune_id=str(c.commune_id),
        commune_code=c.code,
        commune_name=c.name,
        ballots=c.ballots,
        winner_candidate_id=str(c.winner_candidate_id) if c.winner_candidate_id else "",
        candidates=[
            events_pb2.CandidateResult(
                candidate_id=str(k.candidate_id),
                title=k.title,
                votes=k.votes,
                rank=k.rank,
                assembly_priority=k.assembly_priority,
            )
            for k in c.candidates
        ],
    )


def commune_event(results: CertifiedResults, commune: CommuneOutcome) -> events_pb2.CommuneResultCertified:
    message = events_pb2.CommuneResultCertified(
        consultation_id=str(results.consultation_id),
        consultation_code=results.code,
        result=commune_proto(commune),
    )
    message.certified_at.FromDatetime(results.certified_at)
    return message


# --- reading certified results a page at a time (gRPC) -----------------------------------------

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
# Serialized bytes of the communes of one page: far under gRPC's default 4 MB receive limit,
# whatever the number of candidates per commune (a page is cut short rather than grown).
MAX_PAGE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CertifiedPage:
    summary: events_pb2.ConsultationCertified
    results: list[events_pb2.CommuneResult]
    # Code of the last commune of this page when more follow, else None.
    next_after_code: str | None


def page_size_of(requested: int) -> int:
    """0 means the default; above the maximum is capped (AIP-158); negative is refused."""
    if requested < 0:
        raise InvalidInput("page_size must not be negative", code="invalid_page_size")
    return min(requested, MAX_PAGE_SIZE) if requested else DEFAULT_PAGE_SIZE


async def certified_page(
    session: AsyncSession,
    consultation_id: uuid.UUID,
    *,
    after_code: str,
    page_size: int,
    max_bytes: int = MAX_PAGE_BYTES,
) -> CertifiedPage:
    """The summary and the communes after `after_code` (in code order), at most `page_size`
    of them and at most `max_bytes` of them serialized (but always at least one)."""
    consultation = await repository.consultation_by_id(session, consultation_id)
    if consultation is None:
        raise NotFound(f"consultation {consultation_id} does not exist", code="consultation_not_found")
    require_status(consultation.status, Status.CERTIFIED)
    assert consultation.certified_at is not None
    # One more than asked, to know whether another page follows without an empty last page.
    communes = await repository.communes_of(session, consultation_id, after_code=after_code, limit=page_size + 1)
    more = len(communes) > page_size
    communes = communes[:page_size]
    rows = await repository.stored_results(session, consultation_id, commune_ids=[c.commune_id for c in communes])
    page: list[events_pb2.CommuneResult] = []
    size = 0
    for outcome in from_stored(communes, rows):
        message = commune_proto(outcome)
        size += message.ByteSize()
        if page and size > max_bytes:
            more = True
            break
        page.append(message)
    totals = await repository.certified_totals(session, consultation_id)
    summary = Summary(
        consultation.id,
        consultation.code,
        consultation.certified_at,
        totals.ballots,
        consultation.commune_count,
        totals.communes_with_winner,
    )
    return CertifiedPage(summary_proto(summary), page, page[-1].commune_code if more and page else None)
