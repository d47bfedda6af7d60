"""REST transport of the lifecycle slice: open and move consultations, record candidates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, status

from comuna_consultations.domain.consultations import existing
from comuna_consultations.lifecycle import usecases
from comuna_consultations.lifecycle.schemas import (
    CandidateIn,
    CandidateList,
    CandidateOut,
    CommuneOut,
    CommunePage,
    ConsultationIn,
    ConsultationPage,
)
from comuna_consultations.storage.models import Candidate
from comuna_consultations.transport import (
    ConsultationOut,
    IdentityDep,
    Operator,
    PageToken,
    Spokesperson,
    WatcherDep,
    consultation_out,
)
from comuna_platform.auth.fastapi import TerritoryLineagesDep
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.paging import decode_page_token, encode_page_token

router = APIRouter(prefix="/v1", tags=["consultations"])


def _candidate_out(c: Candidate) -> CandidateOut:
    return CandidateOut(
        id=c.id,
        consultation_id=c.consultation_id,
        commune_id=c.commune_id,
        title=c.title,
        description=c.description,
        assembly_priority=c.assembly_priority,
    )


def _after_code(page_token: str) -> str:
    after = decode_page_token(page_token, [str])
    return str(after[0]) if after else ""


@router.post(
    "/consultations",
    status_code=status.HTTP_201_CREATED,
    response_model=ConsultationOut,
    summary="Open a consultation (operator, national scope); snapshots every commune from identity",
)
async def open_consultation(
    body: ConsultationIn, caller: Operator, uow: UnitOfWorkDep, identity: IdentityDep
) -> ConsultationOut:
    schedule = usecases.Schedule(body.assemblies_open_at, body.voting_opens_at, body.voting_closes_at)
    consultation = await usecases.open_consultation(
        uow, identity, caller, code=body.code, title=body.title, schedule=schedule
    )
    return consultation_out(consultation)


@router.get("/consultations", response_model=ConsultationPage, summary="List consultations, newest first (public)")
async def list_consultations(
    uow: UnitOfWorkDep,
    page_token: PageToken = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ConsultationPage:
    page = await usecases.list_consultations(uow, after_code=_after_code(page_token), limit=limit)
    items = [consultation_out(c) for c in page.items]
    return ConsultationPage(items=items, next_page_token=encode_page_token(items[-1].code) if page.more else None)


@router.get("/consultations/{consultation_id}", response_model=ConsultationOut, summary="A consultation (public)")
async def get_consultation(consultation_id: uuid.UUID, uow: UnitOfWorkDep) -> ConsultationOut:
    return consultation_out(await existing(uow, consultation_id))


@router.get(
    "/consultations/{consultation_id}/communes",
    response_model=CommunePage,
    summary="The communes taking part, as snapshotted at opening (public)",
)
async def list_communes(
    consultation_id: uuid.UUID,
    uow: UnitOfWorkDep,
    page_token: PageToken = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CommunePage:
    page = await usecases.list_communes(uow, consultation_id, after_code=_after_code(page_token), limit=limit)
    items = [CommuneOut(commune_id=c.commune_id, code=c.code, name=c.name) for c in page.items]
    return CommunePage(items=items, next_page_token=encode_page_token(items[-1].code) if page.more else None)


@router.post(
    "/consultations/{consultation_id}:start-voting",
    response_model=ConsultationOut,
    summary="assembly -> voting (operator, national scope); the candidate lists become final",
)
async def start_voting(
    consultation_id: uuid.UUID, caller: Operator, uow: UnitOfWorkDep, watcher: WatcherDep
) -> ConsultationOut:
    consultation = await usecases.start_voting(uow, caller, consultation_id, now=datetime.now(UTC), watcher=watcher)
    return consultation_out(consultation)


@router.post(
    "/consultations/{consultation_id}:close",
    response_model=ConsultationOut,
    summary="voting -> closed (operator, national scope); no ballot is accepted once this returns",
)
async def close_voting(
    consultation_id: uuid.UUID, caller: Operator, uow: UnitOfWorkDep, watcher: WatcherDep
) -> ConsultationOut:
    consultation = await usecases.close(uow, caller, consultation_id, now=datetime.now(UTC), watcher=watcher)
    return consultation_out(consultation)


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
    *,
    caller: Spokesperson,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
) -> CandidateOut:
    new = usecases.NewCandidate(body.title, body.description, body.assembly_priority)
    candidate_id = await usecases.record_candidate(uow, caller, consultation_id, commune_id, new, lineages=lineages)
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
async def list_candidates(consultation_id: uuid.UUID, commune_id: uuid.UUID, uow: UnitOfWorkDep) -> CandidateList:
    rows = await usecases.list_candidates(uow, consultation_id, commune_id)
    return CandidateList(items=[_candidate_out(c) for c in rows])
