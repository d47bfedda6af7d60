"""Use cases of the results slice: certify (count, rank, store, announce) and read the
certified results, whole, per commune, or a page of communes at a time."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from comuna_consultations.domain.consultations import (
    StatusWatcher,
    existing,
    existing_commune,
    lock_for_transition,
)
from comuna_consultations.domain.lifecycle import require_status
from comuna_consultations.domain.phases import require_phase
from comuna_consultations.domain.schedules import schedule_from
from comuna_consultations.results import storage
from comuna_consultations.results.events import CommuneResultCertified, ConsultationCertified
from comuna_consultations.results.outcomes import (
    CertifiedResults,
    CommuneOutcome,
    Summary,
    from_stored,
    outcomes,
    summary_of,
)
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Consultation, ConsultationCommune
from comuna_consultations.vocabulary import ConsultationStatus
from comuna_platform.auth.access import Caller
from comuna_platform.uow import Staged, UnitOfWork


async def certify(
    uow: UnitOfWork, caller: Caller, consultation_id: uuid.UUID, *, now: datetime, watcher: StatusWatcher
) -> tuple[Consultation, CertifiedResults]:
    """Count, rank, store the results and announce them, all in the one unit of work."""
    session = uow.session
    consultation = await lock_for_transition(uow, caller, consultation_id, ConsultationStatus.CERTIFIED, watcher)
    # Only once certification opens on the clock (after voting closed): see domain/phases.py.
    schedule = schedule_from(consultation)
    require_phase(schedule, now, schedule.certifiable(now), "certification", "certification_not_open")
    communes = await repository.communes_of(session, consultation_id)
    candidates = await storage.all_candidates(session, consultation_id)
    votes = await storage.votes_per_candidate(session, consultation_id)
    commune_outcomes = outcomes(communes, candidates, votes)
    await storage.insert_results(
        session,
        [
            {
                "consultation_id": consultation_id,
                "commune_id": c.commune_id,
                "candidate_id": k.candidate_id,
                "votes": k.votes,
                "rank": k.rank,
            }
            for c in commune_outcomes
            for k in c.candidates
        ],
    )
    consultation.status = ConsultationStatus.CERTIFIED
    consultation.certified_at = now
    await session.flush()
    results = CertifiedResults(
        consultation_id, consultation.code, now, sum(c.ballots for c in commune_outcomes), commune_outcomes
    )
    # One small event per commune, then the summary: no message grows with the country (a
    # single one with every commune would be ~4.5 MB nationwide, over NATS's 1 MB limit, and
    # would block the outbox relay). Staged in this order, the summary is relayed last.
    await uow.stage_all(
        [
            *(Staged(CommuneResultCertified(results, c), aggregate_id=str(c.commune_id)) for c in commune_outcomes),
            Staged(ConsultationCertified(summary_of(results)), aggregate_id=str(consultation_id)),
        ]
    )
    return consultation, results


async def _certified(uow: UnitOfWork, consultation_id: uuid.UUID) -> Consultation:
    consultation = await existing(uow, consultation_id)
    require_status(consultation.status, ConsultationStatus.CERTIFIED)
    assert consultation.certified_at is not None
    return consultation


async def load_certified(
    uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID | None = None
) -> CertifiedResults:
    """The certified results (of one commune if given); 404 if unknown, 409 before certification."""
    session = uow.session
    consultation = await _certified(uow, consultation_id)
    assert consultation.certified_at is not None
    if commune_id is None:
        communes: Sequence[ConsultationCommune] = await repository.communes_of(session, consultation_id)
    else:
        communes = [await existing_commune(uow, consultation_id, commune_id)]
    rows = await storage.stored_results(
        session, consultation_id, commune_ids=None if commune_id is None else [commune_id]
    )
    outcome = from_stored(communes, rows)
    total = (
        sum(c.ballots for c in outcome)
        if commune_id is None
        else await repository.count_ballots(session, consultation_id)
    )
    return CertifiedResults(consultation.id, consultation.code, consultation.certified_at, total, outcome)


# --- a page of communes at a time (gRPC) -------------------------------------------------------

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class CertifiedPage:
    summary: Summary
    communes: list[CommuneOutcome]
    # Whether communes follow the last of this page.
    more: bool


async def certified_page(
    uow: UnitOfWork, consultation_id: uuid.UUID, *, after_code: str, page_size: int
) -> CertifiedPage:
    """The summary and at most `page_size` communes after `after_code`, in code order."""
    session = uow.session
    consultation = await _certified(uow, consultation_id)
    assert consultation.certified_at is not None
    # One more than asked, to know whether another page follows without an empty last page.
    communes = await repository.communes_of(session, consultation_id, after_code=after_code, limit=page_size + 1)
    more, communes = len(communes) > page_size, communes[:page_size]
    rows = await storage.stored_results(session, consultation_id, commune_ids=[c.commune_id for c in communes])
    totals = await storage.certified_totals(session, consultation_id)
    summary = Summary(
        consultation.id,
        consultation.code,
        consultation.certified_at,
        totals.ballots,
        consultation.commune_count,
        totals.communes_with_winner,
    )
    return CertifiedPage(summary, from_stored(communes, rows), more)
