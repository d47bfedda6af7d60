"""REST transport of the assemblies slice: sessions and proposals, and the prioritised list."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from fastapi import APIRouter, status

from comuna_consultations.assemblies import usecases
from comuna_consultations.assemblies.schemas import (
    AssemblySessionIn,
    AssemblySessionList,
    AssemblySessionOut,
    PrioritisationIn,
    PrioritisationOut,
    PrioritisedCandidateOut,
    ProposalList,
    ProposalOut,
)
from comuna_consultations.storage.models import AssemblySession, Candidate, Prioritisation, Proposal
from comuna_consultations.transport import ClockDep, Spokesperson
from comuna_consultations.vocabulary import ProposalCategory
from comuna_platform.auth.fastapi import TerritoryLineagesDep
from comuna_platform.http.deps import UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["assemblies"])

COMMUNE = "/consultations/{consultation_id}/communes/{commune_id}"


def _proposal_out(p: Proposal) -> ProposalOut:
    return ProposalOut(
        id=p.id,
        session_id=p.session_id,
        commune_id=p.commune_id,
        title=p.title,
        problem=p.problem,
        category=ProposalCategory(p.category),
        estimated_cost=p.estimated_cost,
        currency=p.currency,
        proposing_council_id=p.proposing_council_id,
    )


def _session_out(s: AssemblySession, proposals: Sequence[Proposal]) -> AssemblySessionOut:
    return AssemblySessionOut(
        id=s.id,
        consultation_id=s.consultation_id,
        commune_id=s.commune_id,
        council_id=s.council_id,
        held_at=s.held_at,
        place=s.place,
        attendance=s.attendance,
        minutes=s.minutes,
        minutes_sha256=s.minutes_sha256,
        recorded_by=s.recorded_by,
        recorded_at=s.recorded_at,
        proposals=[_proposal_out(p) for p in proposals if p.session_id == s.id],
    )


def _prioritisation_out(row: Prioritisation, candidates: Sequence[Candidate]) -> PrioritisationOut:
    return PrioritisationOut(
        consultation_id=row.consultation_id,
        commune_id=row.commune_id,
        proposal_ids=list(row.proposal_ids),
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
        candidates=[
            PrioritisedCandidateOut(
                candidate_id=c.id,
                proposal_id=c.proposal_id,
                assembly_priority=c.assembly_priority,
                title=c.title,
                category=ProposalCategory(c.category) if c.category else None,
                estimated_cost=c.estimated_cost,
                currency=c.currency,
            )
            for c in candidates
        ],
    )


@router.post(
    f"{COMMUNE}/assemblies",
    status_code=status.HTTP_201_CREATED,
    response_model=AssemblySessionOut,
    summary="Record an assembly session and the proposals it debated (spokesperson of the commune, or operator)",
)
async def record_session(
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    body: AssemblySessionIn,
    *,
    caller: Spokesperson,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    clock: ClockDep,
) -> AssemblySessionOut:
    new = usecases.NewSession(
        council_id=body.council_id,
        held_at=body.held_at,
        place=body.place,
        attendance=body.attendance,
        minutes=body.minutes,
        minutes_sha256=body.minutes_sha256,
        proposals=[
            usecases.NewProposal(p.title, p.problem, p.category, p.estimated_cost, p.currency, p.proposing_council_id)
            for p in body.proposals
        ],
    )
    row, _ = await usecases.record_session(
        uow, caller, consultation_id, commune_id, new, now=clock.now(), lineages=lineages
    )
    _, proposals = await usecases.list_sessions(uow, consultation_id, commune_id)
    return _session_out(row, proposals)


@router.get(
    f"{COMMUNE}/assemblies",
    response_model=AssemblySessionList,
    summary="A commune's assembly sessions with their proposals, oldest first (public)",
)
async def list_sessions(consultation_id: uuid.UUID, commune_id: uuid.UUID, uow: UnitOfWorkDep) -> AssemblySessionList:
    sessions, proposals = await usecases.list_sessions(uow, consultation_id, commune_id)
    return AssemblySessionList(items=[_session_out(s, proposals) for s in sessions])


@router.get(f"{COMMUNE}/proposals", response_model=ProposalList, summary="A commune's proposals (public)")
async def list_proposals(consultation_id: uuid.UUID, commune_id: uuid.UUID, uow: UnitOfWorkDep) -> ProposalList:
    return ProposalList(
        items=[_proposal_out(p) for p in await usecases.list_proposals(uow, consultation_id, commune_id)]
    )


@router.put(
    f"{COMMUNE}/prioritisation",
    response_model=PrioritisationOut,
    summary="Record the commune's ordered candidate list from its proposals (spokesperson, or operator); "
    "replaces the commune's candidates while registration is open",
)
async def prioritise(
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    body: PrioritisationIn,
    *,
    caller: Spokesperson,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    clock: ClockDep,
) -> PrioritisationOut:
    await usecases.prioritise(
        uow, caller, consultation_id, commune_id, body.proposal_ids, now=clock.now(), lineages=lineages
    )
    return _prioritisation_out(*await usecases.prioritisation(uow, consultation_id, commune_id))


@router.get(
    f"{COMMUNE}/prioritisation",
    response_model=PrioritisationOut,
    summary="The commune's prioritised list: who recorded it, when, and its candidates (public)",
)
async def get_prioritisation(
    consultation_id: uuid.UUID, commune_id: uuid.UUID, uow: UnitOfWorkDep
) -> PrioritisationOut:
    return _prioritisation_out(*await usecases.prioritisation(uow, consultation_id, commune_id))
