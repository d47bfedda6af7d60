"""REST transport of the consultations service."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.api.schemas import (
    BallotIn,
    BallotOut,
    CandidateIn,
    CandidateList,
    CandidateOut,
    CandidateResultOut,
    CommuneOut,
    CommunePage,
    CommuneResultOut,
    ConsultationIn,
    ConsultationOut,
    ConsultationPage,
    ReceiptOut,
    ResultsOut,
)
from comuna_consultations.clients.identity import IdentityClient
from comuna_consultations.domain import consultations as usecases
from comuna_consultations.domain import voting
from comuna_consultations.domain.results import CommuneOutcome, load_certified
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Candidate, Consultation
from comuna_consultations.storage.voting_snapshot import VotingSnapshotCache
from comuna_platform.auth.fastapi import require_roles
from comuna_platform.auth.principal import Principal
from comuna_platform.errors import NotFound
from comuna_platform.http.deps import RuntimeDep
from comuna_platform.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["consultations"])

Operator = Annotated[Principal, require_roles("operator")]
Spokesperson = Annotated[Principal, require_roles("spokesperson", "operator")]
# Which of the two is allowed depends on the channel; the use case checks it.
BallotSubmitter = Annotated[Principal, require_roles("polling_officer", "service")]


async def identity_of(request: Request) -> IdentityClient:
    client: IdentityClient = request.app.state.identity
    return client


async def snapshots_of(request: Request) -> VotingSnapshotCache:
    cache: VotingSnapshotCache = request.app.state.voting_snapshots
    return cache


IdentityDep = Annotated[IdentityClient, Depends(identity_of)]
SnapshotsDep = Annotated[VotingSnapshotCache, Depends(snapshots_of)]


def _out(c: Consultation) -> ConsultationOut:
    return ConsultationOut(
        id=c.id,
        code=c.code,
        title=c.title,
        status=c.status,
        assemblies_open_at=c.assemblies_open_at,
        voting_opens_at=c.voting_opens_at,
        voting_closes_at=c.voting_closes_at,
        commune_count=c.commune_count,
        voting_started_at=c.voting_started_at,
        closed_at=c.closed_at,
        certified_at=c.certified_at,
    )


def _candidate_out(c: Candidate) -> CandidateOut:
    return CandidateOut(
        id=c.id,
        consultation_id=c.consultation_id,
        commune_id=c.commune_id,
        title=c.title,
        description=c.description,
        assembly_priority=c.assembly_priority,
    )


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


async def _existing(session: AsyncSession, consultation_id: uuid.UUID) -> Consultation:
    consultation = await repository.consultation_by_id(session, consultation_id)
    if consultation is None:
        raise usecases.not_found(consultation_id)
    return consultation


@router.post(
    "/consultations",
    status_code=status.HTTP_201_CREATED,
    response_model=ConsultationOut,
    summary="Open a consultation (operator, national scope); snapshots every commune from identity",
)
async def open_consultation(
    body: ConsultationIn, principal: Operator, runtime: RuntimeDep, identity: IdentityDep
) -> ConsultationOut:
    schedule = usecases.Schedule(body.assemblies_open_at, body.voting_opens_at, body.voting_closes_at)
    consultation = await usecases.open_consultation(
        runtime.db, identity, principal, code=body.code, title=body.title, schedule=schedule
    )
    return _out(consultation)


@router.get("/consultations", response_model=ConsultationPage, summary="List consultations, newest first (public)")
async def list_consultations(
    runtime: RuntimeDep,
    after: Annotated[str, Query(max_length=16, description="`next_after` of the previous page")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ConsultationPage:
    async with runtime.db.transaction() as session:
        rows = await repository.list_consultations(session, after_code=after, limit=limit)
    items = [_out(c) for c in rows]
    return ConsultationPage(items=items, next_after=items[-1].code if len(items) == limit else None)


@router.get("/consultations/{consultation_id}", response_model=ConsultationOut, summary="A consultation (public)")
async def get_consultation(consultation_id: uuid.UUID, runtime: RuntimeDep) -> ConsultationOut:
    async with runtime.db.transaction() as session:
        return _out(await _existing(session, consultation_id))


@router.get(
    "/consultations/{consultation_id}/communes",
    response_model=CommunePage,
    summary="The communes taking part, as snapshotted at opening (public)",
)
async def list_communes(
    consultation_id: uuid.UUID,
    runtime: RuntimeDep,
    after: Annotated[str, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CommunePage:
    async with runtime.db.transaction() as session:
        await _existing(session, consultation_id)
        rows = await repository.communes_of(session, consultation_id, after_code=after, limit=limit)
    items = [CommuneOut(commune_id=c.commune_id, code=c.code, name=c.name) for c in rows]
    return CommunePage(items=items, next_after=items[-1].code if len(items) == limit else None)


Transition = Callable[..., Awaitable[Consultation]]


async def _transition(
    runtime: Runtime,
    snapshots: VotingSnapshotCache,
    principal: Principal,
    consultation_id: uuid.UUID,
    step: Transition,
) -> ConsultationOut:
    async with runtime.db.transaction() as session:
        consultation = await step(session, principal, consultation_id, now=datetime.now(UTC))
    snapshots.invalidate(consultation_id)
    return _out(consultation)


@router.post(
    "/consultations/{consultation_id}:start-voting",
    response_model=ConsultationOut,
    summary="assembly -> voting (operator, national scope); the candidate lists become final",
)
async def start_voting(
    consultation_id: uuid.UUID, principal: Operator, runtime: RuntimeDep, snapshots: SnapshotsDep
) -> ConsultationOut:
    return await _transition(runtime, snapshots, principal, consultation_id, usecases.start_voting)


@router.post(
    "/consultations/{consultation_id}:close",
    response_model=ConsultationOut,
    summary="voting -> closed (operator, national scope); no ballot is accepted once this returns",
)
async def close_voting(
    consultation_id: uuid.UUID, principal: Operator, runtime: RuntimeDep, snapshots: SnapshotsDep
) -> ConsultationOut:
    return await _transition(runtime, snapshots, principal, consultation_id, usecases.close)


@router.post(
    "/consultations/{consultation_id}:certify",
    response_model=ConsultationOut,
    summary="closed -> certified (operator, national scope): count, rank and publish the results",
)
async def certify(
    consultation_id: uuid.UUID, principal: Operator, runtime: RuntimeDep, snapshots: SnapshotsDep
) -> ConsultationOut:
    async def step(
        session: AsyncSession, principal: Principal, consultation_id: uuid.UUID, *, now: datetime
    ) -> Consultation:
        consultation, _ = await usecases.certify(session, principal, consultation_id, now=now)
        return consultation

    return await _transition(runtime, snapshots, principal, consultation_id, step)


@router.post(
    "/consultations/{consultation_id}/communes/{commune_id}/candidates",
    status_code=status.HTTP_201_CREATED,
    response_model=CandidateOut,
    summary="Record an assembly's candidate project (spokesperson of the commune, or operator)",
)
async def record_candidate(
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    body: CandidateIn,
    principal: Spokesperson,
    runtime: RuntimeDep,
) -> CandidateOut:
    new = usecases.NewCandidate(body.title, body.description, body.assembly_priority)
    async with runtime.db.transaction() as session:
        candidate_id = await usecases.record_candidate(session, principal, consultation_id, commune_id, new)
    return CandidateOut(
        id=candidate_id,
        consultation_id=consultation_id,
        commune_id=commune_id,
        title=new.title,
        description=new.description,
        assembly_priority=new.assembly_priority,
    )


@router.get(
    "/consultations/{consultation_id}/communes/{commune_id}/candidates",
    response_model=CandidateList,
    summary="A commune's candidates in the assembly's order of priority (public)",
)
async def list_candidates(consultation_id: uuid.UUID, commune_id: uuid.UUID, runtime: RuntimeDep) -> CandidateList:
    async with runtime.db.transaction() as session:
        await _existing(session, consultation_id)
        if await repository.commune(session, consultation_id, commune_id) is None:
            raise NotFound(f"commune {commune_id} is not part of this consultation", code="commune_not_found")
        rows = await repository.candidates_of_commune(session, consultation_id, commune_id)
    return CandidateList(items=[_candidate_out(c) for c in rows])


@router.post(
    "/consultations/{consultation_id}/ballots",
    status_code=status.HTTP_201_CREATED,
    response_model=BallotOut,
    summary="Cast a ballot (polling officer of the commune for `table`, service for `online`)",
)
async def cast_ballot(
    consultation_id: uuid.UUID,
    body: BallotIn,
    *,
    principal: BallotSubmitter,
    runtime: RuntimeDep,
    identity: IdentityDep,
    snapshots: SnapshotsDep,
) -> BallotOut:
    request = voting.BallotRequest(consultation_id, body.commune_id, body.candidate_id, body.national_id, body.channel)
    cast = await voting.cast_ballot(runtime.db, snapshots, identity, principal, request, now=datetime.now(UTC))
    return BallotOut(ballot_id=cast.ballot_id, receipt=cast.receipt)


@router.get(
    "/consultations/{consultation_id}/receipts/{receipt}",
    response_model=ReceiptOut,
    summary="Was the ballot with this receipt stored? (public; never says what it chose)",
)
async def check_receipt(consultation_id: uuid.UUID, receipt: uuid.UUID, runtime: RuntimeDep) -> ReceiptOut:
    if not await voting.receipt_recorded(runtime.db, consultation_id, receipt):
        raise NotFound("no ballot with this receipt in this consultation", code="receipt_not_found")
    return ReceiptOut(receipt=str(receipt), recorded=True)


@router.get(
    "/consultations/{consultation_id}/results",
    response_model=ResultsOut,
    summary="Certified results of every commune (public; 409 until certified)",
)
async def results(consultation_id: uuid.UUID, runtime: RuntimeDep) -> ResultsOut:
    async with runtime.db.transaction() as session:
        certified = await load_certified(session, consultation_id)
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
async def commune_results(consultation_id: uuid.UUID, commune_id: uuid.UUID, runtime: RuntimeDep) -> CommuneResultOut:
    async with runtime.db.transaction() as session:
        certified = await load_certified(session, consultation_id, commune_id)
    return _commune_result(certified.communes[0])
