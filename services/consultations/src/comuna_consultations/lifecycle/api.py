"""REST transport of the lifecycle slice: open consultations, amend their schedule, hold communes,
record candidates."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from comuna_consultations.domain.consultations import existing
from comuna_consultations.domain.phases import Schedule, VotingWindow
from comuna_consultations.lifecycle import usecases
from comuna_consultations.lifecycle.schemas import (
    AmendmentList,
    AmendmentOut,
    CandidateIn,
    CandidateList,
    CandidateOut,
    CommuneOut,
    CommunePage,
    ConsultationIn,
    ConsultationPage,
    HoldIn,
    HoldList,
    HoldOut,
    ScheduleAmendmentIn,
)
from comuna_consultations.storage.models import Candidate, CommuneHold
from comuna_consultations.transport import (
    ClockDep,
    ConsultationOut,
    IdentityDep,
    Operator,
    PageToken,
    Spokesperson,
    WatcherDep,
    consultation_out,
)
from comuna_consultations.vocabulary import HoldKind, ProposalCategory
from comuna_platform.auth.fastapi import TerritoryLineagesDep
from comuna_platform.errors import InvalidInput
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
        category=ProposalCategory(c.category) if c.category else None,
        estimated_cost=c.estimated_cost,
        currency=c.currency,
        proposal_id=c.proposal_id,
        proposing_council_id=c.proposing_council_id,
        registered_at=c.created_at,
    )


def _hold_out(h: CommuneHold) -> HoldOut:
    return HoldOut(
        commune_id=h.commune_id,
        kind=HoldKind(h.kind),
        voting_opens_at=h.voting_opens_at,
        voting_closes_at=h.voting_closes_at,
        reason=h.reason,
        held_by=h.held_by,
        held_at=h.held_at,
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
    body: ConsultationIn, caller: Operator, uow: UnitOfWorkDep, identity: IdentityDep, clock: ClockDep
) -> ConsultationOut:
    schedule = Schedule(
        body.assemblies_open_at,
        body.candidates_close_at,
        body.roll_cutoff_at,
        body.voting_opens_at,
        body.voting_closes_at,
        body.certification_opens_at,
    )
    rules = usecases.Rules(body.max_candidates, body.funds_per_commune, body.funds_currency)
    consultation = await usecases.open_consultation(
        uow, identity, caller, code=body.code, title=body.title, schedule=schedule, rules=rules
    )
    return consultation_out(consultation, clock.now())


@router.get("/consultations", response_model=ConsultationPage, summary="List consultations, newest first (public)")
async def list_consultations(
    uow: UnitOfWorkDep,
    clock: ClockDep,
    page_token: PageToken = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ConsultationPage:
    page = await usecases.list_consultations(uow, after_code=_after_code(page_token), limit=limit)
    now = clock.now()
    items = [consultation_out(c, now) for c in page.items]
    return ConsultationPage(items=items, next_page_token=encode_page_token(items[-1].code) if page.more else None)


@router.get("/consultations/{consultation_id}", response_model=ConsultationOut, summary="A consultation (public)")
async def get_consultation(consultation_id: uuid.UUID, uow: UnitOfWorkDep, clock: ClockDep) -> ConsultationOut:
    return consultation_out(await existing(uow, consultation_id), clock.now())


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
    "/consultations/{consultation_id}:amend-schedule",
    response_model=ConsultationOut,
    summary="Move future dates of the schedule (operator, national scope; reason required, order kept)",
)
async def amend_schedule(
    consultation_id: uuid.UUID,
    body: ScheduleAmendmentIn,
    *,
    caller: Operator,
    uow: UnitOfWorkDep,
    watcher: WatcherDep,
    clock: ClockDep,
) -> ConsultationOut:
    now = clock.now()
    consultation = await usecases.amend_schedule(
        uow, caller, consultation_id, body.changes(), reason=body.reason, now=now, watcher=watcher
    )
    return consultation_out(consultation, now)


@router.get(
    "/consultations/{consultation_id}/schedule-amendments",
    response_model=AmendmentList,
    summary="Every amendment of the schedule, oldest first (public)",
)
async def list_amendments(consultation_id: uuid.UUID, uow: UnitOfWorkDep) -> AmendmentList:
    rows = await usecases.list_amendments(uow, consultation_id)
    return AmendmentList(
        items=[
            AmendmentOut(id=a.id, changes=a.changes, reason=a.reason, amended_by=a.amended_by, amended_at=a.amended_at)
            for a in rows
        ]
    )


@router.post(
    "/consultations/{consultation_id}/communes/{commune_id}:hold",
    status_code=status.HTTP_201_CREATED,
    response_model=HoldOut,
    summary="Exclude a commune or postpone it to its own window, before its voting opens (operator, national)",
)
async def hold_commune(
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    body: HoldIn,
    *,
    caller: Operator,
    uow: UnitOfWorkDep,
    watcher: WatcherDep,
    clock: ClockDep,
) -> HoldOut:
    window = None
    if body.voting_opens_at is not None or body.voting_closes_at is not None:
        if body.voting_opens_at is None or body.voting_closes_at is None:
            raise InvalidInput("a window needs both voting_opens_at and voting_closes_at", code="window_invalid")
        window = VotingWindow(body.voting_opens_at, body.voting_closes_at)
    hold = usecases.NewHold(body.kind, body.reason, window)
    row = await usecases.hold_commune(uow, caller, consultation_id, commune_id, hold, now=clock.now(), watcher=watcher)
    return _hold_out(row)


@router.get(
    "/consultations/{consultation_id}/holds",
    response_model=HoldList,
    summary="Communes excluded or postponed, with who, when and why (public)",
)
async def list_holds(consultation_id: uuid.UUID, uow: UnitOfWorkDep) -> HoldList:
    return HoldList(items=[_hold_out(h) for h in await usecases.list_holds(uow, consultation_id)])


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
    clock: ClockDep,
) -> CandidateOut:
    new = usecases.NewCandidate(
        body.title, body.description, body.assembly_priority, body.category, body.estimated_cost, body.currency
    )
    candidate_id = await usecases.record_candidate(
        uow, caller, consultation_id, commune_id, new, now=clock.now(), lineages=lineages
    )
    return _candidate_out(await usecases.candidate(uow, candidate_id))


@router.get(
    "/consultations/{consultation_id}/communes/{commune_id}/candidates",
    response_model=CandidateList,
    summary="A commune's candidates in the assembly's order of priority (public)",
)
async def list_candidates(consultation_id: uuid.UUID, commune_id: uuid.UUID, uow: UnitOfWorkDep) -> CandidateList:
    rows = await usecases.list_candidates(uow, consultation_id, commune_id)
    return CandidateList(items=[_candidate_out(c) for c in rows])
