"""REST transport of the results slice: full results after a commune's voting closed, per-commune
certification, recounts, auditors' conflict decisions and the tie-break."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from comuna_consultations.results import usecases
from comuna_consultations.results.outcomes import CommuneOutcome
from comuna_consultations.results.schemas import (
    BlockedCommuneOut,
    CandidateResultOut,
    CertificationOut,
    CertificationRunOut,
    CertifiedCommuneOut,
    CommuneResultOut,
    ConflictDecisionOut,
    ReasonIn,
    ResultsOut,
    SubtotalOut,
    TieBreakIn,
    TieBreakOut,
)
from comuna_consultations.transport import Operator, RecordDep, WatcherDep, consultation_out
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import require_assignment
from comuna_platform.auth.roles import Role
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["consultations"])

Auditor = Annotated[Caller, require_assignment(Role.AUDITOR)]


async def now_of(request: Request) -> datetime:
    """The server clock of the runtime (tests give it a ManualClock)."""
    runtime: Runtime = request.app.state.runtime
    return runtime.clock.now()


Now = Annotated[datetime, Depends(now_of)]


def commune_out(c: CommuneOutcome) -> CommuneResultOut:
    r, cert = c.result, c.certification
    return CommuneResultOut(
        commune_id=c.commune_id,
        commune_code=c.code,
        commune_name=c.name,
        ballots=r.ballots,
        blank=r.blank,
        null=r.null,
        participations=r.participations,
        roll_size=r.roll_size,
        turnout=r.participations / r.roll_size if r.roll_size else 0.0,
        conflicts=r.conflicts,
        counted_conflicts=r.counted_conflicts,
        winner_candidate_id=r.winner_candidate_id,
        candidates=[
            CandidateResultOut(
                candidate_id=k.candidate_id,
                title=k.title,
                votes=k.votes,
                rank=k.rank,
                assembly_priority=k.assembly_priority,
            )
            for k in r.ranked
        ],
        subtotals=[
            SubtotalOut(
                channel=s.channel,
                table_id=s.table_id,
                votes=s.votes,
                blank=s.blank,
                null=s.null,
                participations=s.participations,
            )
            for s in r.subtotals
        ],
        certification=None
        if cert is None
        else CertificationOut(
            version=cert.version,
            supersedes=cert.supersedes,
            reason=cert.reason,
            certified_at=cert.certified_at,
            certified_by=cert.certified_by,
            tie_break=cert.tie_break,
        ),
    )


@router.post(
    "/consultations/{consultation_id}:certify",
    response_model=CertificationRunOut,
    summary="Certify every commune whose voting closed and whose gate passes (operator, national scope); "
    "the others are listed as blocked, with the reason",
)
async def certify(
    *,
    consultation_id: uuid.UUID,
    caller: Operator,
    uow: UnitOfWorkDep,
    watcher: WatcherDep,
    now: Now,
    record: RecordDep,
) -> CertificationRunOut:
    run = await usecases.certify_all(uow, caller, consultation_id, now=now, watcher=watcher, record=record)
    return CertificationRunOut(
        **consultation_out(run.consultation, now).model_dump(),
        certified_communes=[
            CertifiedCommuneOut(
                commune_id=c.commune_id,
                commune_code=c.code,
                version=c.certification.version if c.certification else 1,
                ballots=c.ballots,
                winner_candidate_id=c.winner_candidate_id,
            )
            for c in run.certified
        ],
        blocked_communes=[
            BlockedCommuneOut(
                commune_id=b.commune_id, commune_code=b.code, code=b.problem.code, detail=b.problem.detail
            )
            for b in run.blocked
        ],
    )


@router.post(
    "/consultations/{consultation_id}/communes/{commune_id}:certify",
    response_model=CommuneResultOut,
    status_code=201,
    summary="Certify one commune (operator, national scope): version 1 of its results",
)
async def certify_commune(
    *,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    caller: Operator,
    uow: UnitOfWorkDep,
    watcher: WatcherDep,
    now: Now,
    record: RecordDep,
) -> CommuneResultOut:
    outcome = await usecases.certify_commune(
        uow, caller, consultation_id, commune_id, now=now, watcher=watcher, record=record
    )
    return commune_out(outcome)


@router.post(
    "/consultations/{consultation_id}/communes/{commune_id}:recount",
    response_model=CommuneResultOut,
    status_code=201,
    summary="Recount a certified commune with a reason (operator, national scope): version n+1 supersedes n",
)
async def recount(
    *,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    body: ReasonIn,
    caller: Operator,
    uow: UnitOfWorkDep,
    now: Now,
    record: RecordDep,
) -> CommuneResultOut:
    outcome = await usecases.recount(
        uow, caller, consultation_id, commune_id, reason=body.reason, now=now, record=record
    )
    return commune_out(outcome)


@router.post(
    "/consultations/{consultation_id}/communes/{commune_id}/conflict-decision",
    response_model=ConflictDecisionOut,
    status_code=201,
    summary="Record an auditor's decision on a commune's participation conflicts (auditor, national scope)",
)
async def conflict_decision(
    *, consultation_id: uuid.UUID, commune_id: uuid.UUID, body: ReasonIn, caller: Auditor, uow: UnitOfWorkDep, now: Now
) -> ConflictDecisionOut:
    d = await usecases.decide_conflicts(uow, caller, consultation_id, commune_id, reason=body.reason, now=now)
    return ConflictDecisionOut(
        commune_id=d.commune_id,
        conflicts=d.conflicts,
        margin=d.margin,
        decided_at=d.decided_at,
        decided_by=d.decided_by,
        reason=d.reason,
    )


@router.get(
    "/consultations/{consultation_id}/results",
    response_model=ResultsOut,
    summary="Certified results of every certified commune, latest versions (public; 409 before voting closed)",
)
async def results(consultation_id: uuid.UUID, uow: UnitOfWorkDep, now: Now) -> ResultsOut:
    found = await usecases.certified_results(uow, consultation_id, now=now)
    return ResultsOut(
        consultation_id=found.consultation.id,
        code=found.consultation.code,
        certified_at=found.consultation.certified_at,
        ballots=found.ballots,
        communes=[commune_out(c) for c in found.communes],
    )


@router.get(
    "/consultations/{consultation_id}/communes/{commune_id}/results",
    response_model=CommuneResultOut,
    summary="One commune's full results: its latest certified version, else counted now "
    "(public; 409 before its voting closed)",
)
async def commune_results(
    consultation_id: uuid.UUID, commune_id: uuid.UUID, uow: UnitOfWorkDep, now: Now
) -> CommuneResultOut:
    return commune_out(await usecases.commune_results(uow, consultation_id, commune_id, now=now))


@router.get(
    "/consultations/{consultation_id}/communes/{commune_id}/certifications",
    response_model=list[CommuneResultOut],
    summary="Every certified version of a commune, oldest first (public; 409 before its voting closed)",
)
async def certifications(
    consultation_id: uuid.UUID, commune_id: uuid.UUID, uow: UnitOfWorkDep, now: Now
) -> list[CommuneResultOut]:
    return [commune_out(c) for c in await usecases.commune_history(uow, consultation_id, commune_id, now=now)]


def _tie_break_out(t: usecases.TieBreak) -> TieBreakOut:
    return TieBreakOut(rules=[str(r) for r in t.rules], draw_seed=t.draw_seed.hex())


@router.get(
    "/consultations/{consultation_id}/tie-break",
    response_model=TieBreakOut,
    summary="The consultation's tie-break rules and the published seed of its draw (public)",
)
async def tie_break(consultation_id: uuid.UUID, uow: UnitOfWorkDep) -> TieBreakOut:
    return _tie_break_out(await usecases.tie_break(uow, consultation_id))


@router.put(
    "/consultations/{consultation_id}/tie-break",
    response_model=TieBreakOut,
    summary="Declare the tie-break rules, in order (operator, national scope; only before voting opens)",
)
async def declare_tie_break(
    consultation_id: uuid.UUID, body: TieBreakIn, caller: Operator, uow: UnitOfWorkDep, now: Now
) -> TieBreakOut:
    return _tie_break_out(await usecases.declare_tie_break(uow, caller, consultation_id, body.rules, now=now))
