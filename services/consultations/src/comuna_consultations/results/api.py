"""REST transport of the results slice: certify, and the public certified results."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from comuna_consultations.results import usecases
from comuna_consultations.results.outcomes import CommuneOutcome
from comuna_consultations.results.schemas import CandidateResultOut, CommuneResultOut, ResultsOut
from comuna_consultations.transport import ClockDep, ConsultationOut, Operator, WatcherDep, consultation_out
from comuna_platform.http.deps import UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["consultations"])


def _commune_result(c: CommuneOutcome) -> CommuneResultOut:
    return CommuneResultOut(
        commune_id=c.commune_id,
        commune_code=c.code,
        commune_name=c.name,
        ballots=c.ballots,
        winner_candidate_id=c.winner_candidate_id,
        candidates=[
            CandidateResultOut(
                candidate_id=k.candidate_id,
                title=k.title,
                votes=k.votes,
                rank=k.rank,
                assembly_priority=k.assembly_priority,
            )
            for k in c.candidates
        ],
    )


@router.post(
    "/consultations/{consultation_id}:certify",
    response_model=ConsultationOut,
    summary="open -> certified once certification opens (operator, national scope): count, rank, publish",
)
async def certify(
    consultation_id: uuid.UUID, caller: Operator, uow: UnitOfWorkDep, watcher: WatcherDep, clock: ClockDep
) -> ConsultationOut:
    now = clock.now()
    consultation, _ = await usecases.certify(uow, caller, consultation_id, now=now, watcher=watcher)
    return consultation_out(consultation, now)


@router.get(
    "/consultations/{consultation_id}/results",
    response_model=ResultsOut,
    summary="Certified results of every commune (public; 409 until certified)",
)
async def results(consultation_id: uuid.UUID, uow: UnitOfWorkDep) -> ResultsOut:
    certified = await usecases.load_certified(uow, consultation_id)
    return ResultsOut(
        consultation_id=certified.consultation_id,
        code=certified.code,
        certified_at=certified.certified_at,
        ballots=certified.ballots,
        communes=[_commune_result(c) for c in certified.communes],
    )


@router.get(
    "/consultations/{consultation_id}/communes/{commune_id}/results",
    response_model=CommuneResultOut,
    summary="Certified results of one commune (public; 409 until certified)",
)
async def commune_results(consultation_id: uuid.UUID, commune_id: uuid.UUID, uow: UnitOfWorkDep) -> CommuneResultOut:
    certified = await usecases.load_certified(uow, consultation_id, commune_id)
    return _commune_result(certified.communes[0])
