"""Use cases of a consultation's life: open it, record the assemblies' candidates, move it on.

Each use case validates everything before it writes, and writes its state change and its event
in the caller's single transaction (the outbox makes the event exist iff the change committed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from comuna.consultations.v1 import events_pb2
from comuna_consultations.clients.identity import IdentityClient
from comuna_consultations.domain.lifecycle import Status, check_transition, require_status
from comuna_consultations.domain.results import (
    CertifiedResults,
    commune_event,
    outcomes,
    summary_of,
    summary_proto,
)
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Consultation
from comuna_platform.auth.principal import Principal
from comuna_platform.db import Database
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound
from comuna_platform.events import NewEvent, stage_event, stage_events

# The whole country: opening, moving and certifying a consultation are national acts.
COUNTRY = "VE"


def not_found(consultation_id: uuid.UUID) -> NotFound:
    return NotFound(f"consultation {consultation_id} does not exist", code="consultation_not_found")


@dataclass(frozen=True, slots=True)
class Schedule:
    assemblies_open_at: datetime
    voting_opens_at: datetime
    voting_closes_at: datetime

    def check(self) -> None:
        if not self.assemblies_open_at < self.voting_opens_at < self.voting_closes_at:
            raise InvalidInput(
                "the schedule must be ordered: assemblies_open_at < voting_opens_at < voting_closes_at",
                code="schedule_invalid",
            )


async def open_consultation(
    db: Database,
    identity: IdentityClient,
    principal: Principal,
    *,
    code: str,
    title: str,
    schedule: Schedule,
) -> Consultation:
    """Create a consultation in `assembly` with a snapshot of every commune identity knows."""
    principal.require_territory(COUNTRY)
    schedule.check()
    async with db.transaction() as session:
        # Cheap early refusal, before asking identity for thousands of communes; the unique
        # constraint below is what actually decides under concurrency.
        if await repository.code_taken(session, code):
            raise _exists(code)
    communes = await identity.list_all_communes()
    if not communes:
        raise FailedPrecondition("identity knows no communes; register the territories first", code="no_communes")
    consultation_id = uuid.uuid4()
    row = {
        "id": consultation_id,
        "code": code,
        "title": title,
        "status": Status.ASSEMBLY.value,
        "assemblies_open_at": schedule.assemblies_open_at,
        "voting_opens_at": schedule.voting_opens_at,
        "voting_closes_at": schedule.voting_closes_at,
        "commune_count": len(communes),
    }
    async with db.transaction() as session:
        if not await repository.insert_consultation(session, row):
            raise _exists(code)
        await repository.insert_communes(
            session,
            [
                {"consultation_id": consultation_id, "commune_id": c.id, "code": c.code, "name": c.name}
                for c in communes
            ],
        )
        message = events_pb2.ConsultationOpened(
            consultation_id=str(consultation_id), code=code, commune_count=len(communes)
        )
        message.voting_opens_at.FromDatetime(schedule.voting_opens_at)
        message.voting_closes_at.FromDatetime(schedule.voting_closes_at)
        await stage_event(session, message=message, aggregate_id=str(consultation_id))
        consultation = await repository.consultation_by_id(session, consultation_id)
        assert consultation is not None
        return consultation


def _exists(code: str) -> Conflict:
    return Conflict(f"a consultation with code {code} already exists", code="consultation_exists")


@dataclass(frozen=True, slots=True)
class NewCandidate:
    title: str
    description: str
    assembly_priority: int


async def record_candidate(
    session: AsyncSession,
    principal: Principal,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    new: NewCandidate,
) -> uuid.UUID:
    """Record one of a commune's assembly candidates; only while assemblies are running."""
    # FOR SHARE: start-voting (FOR UPDATE) waits for this transaction, so no candidate can
    # slip in after voting started (the ballot path relies on the candidate list being final).
    consultation = await repository.consultation_by_id(session, consultation_id, lock="share")
    if consultation is None:
        raise not_found(consultation_id)
    commune = await repository.commune(session, consultation_id, commune_id)
    if commune is None:
        raise NotFound(f"commune {commune_id} is not part of this consultation", code="commune_not_found")
    principal.require_territory(commune.code)
    require_status(consultation.status, Status.ASSEMBLY)
    candidate_id = uuid.uuid4()
    inserted = await repository.insert_candidate(
        session,
        {
            "id": candidate_id,
            "consultation_id": consultation_id,
            "commune_id": commune_id,
            "title": new.title,
            "description": new.description,
            "assembly_priority": new.assembly_priority,
        },
    )
    if not inserted:
        raise Conflict(
            f"the commune already has a candidate with priority {new.assembly_priority}",
            code="candidate_priority_taken",
        )
    await stage_event(
        session,
        aggregate_id=str(consultation_id),
        message=events_pb2.CandidateRecorded(
            consultation_id=str(consultation_id),
            candidate_id=str(candidate_id),
            commune_id=str(commune_id),
            title=new.title,
            assembly_priority=new.assembly_priority,
        ),
    )
    return candidate_id


async def _lock_for(
    session: AsyncSession, principal: Principal, consultation_id: uuid.UUID, target: Status
) -> Consultation:
    principal.require_territory(COUNTRY)
    # FOR UPDATE conflicts with the FOR KEY SHARE every ballot takes and with the FOR SHARE of
    # candidate recording: the transition waits for those in flight, and later ones see it.
    consultation = await repository.consultation_by_id(session, consultation_id, lock="update")
    if consultation is None:
        raise not_found(consultation_id)
    check_transition(consultation.status, target)
    return consultation


async def start_voting(
    session: AsyncSession, principal: Principal, consultation_id: uuid.UUID, *, now: datetime
) -> Consultation:
    consultation = await _lock_for(session, principal, consultation_id, Status.VOTING)
    consultation.status = Status.VOTING.value
    consultation.voting_started_at = now
    await session.flush()
    return consultation


async def close(
    session: AsyncSession, principal: Principal, consultation_id: uuid.UUID, *, now: datetime
) -> Consultation:
    consultation = await _lock_for(session, principal, consultation_id, Status.CLOSED)
    consultation.status = Status.CLOSED.value
    consultation.closed_at = now
    await session.flush()
    # Exact: ballots in flight committed before our lock was granted; later ones see "closed".
    ballots = await repository.count_ballots(session, consultation_id)
    await stage_event(
        session,
        aggregate_id=str(consultation_id),
        message=events_pb2.ConsultationClosed(consultation_id=str(consultation_id), ballots=ballots),
    )
    return consultation


async def certify(
    session: AsyncSession, principal: Principal, consultation_id: uuid.UUID, *, now: datetime
) -> tuple[Consultation, CertifiedResults]:
    """Count, rank, store the results and announce them, all in the caller's one transaction."""
    consultation = await _lock_for(session, principal, consultation_id, Status.CERTIFIED)
    communes = await repository.communes_of(session, consultation_id)
    candidates = await repository.all_candidates(session, consultation_id)
    votes = await repository.votes_per_candidate(session, consultation_id)
    commune_outcomes = outcomes(communes, candidates, votes)
    await repository.insert_results(
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
    consultation.status = Status.CERTIFIED.value
    consultation.certified_at = now
    await session.flush()
    results = CertifiedResults(
        consultation_id, consultation.code, now, sum(c.ballots for c in commune_outcomes), commune_outcomes
    )
    # One small event per commune, then the summary: no message grows with the country (a
    # single one with every commune would be ~4.5 MB nationwide, over NATS's 1 MB limit, and
    # would block the outbox relay). Staged in this order, the summary is relayed last.
    await stage_events(
        session,
        [
            *(NewEvent(message=commune_event(results, c), aggregate_id=str(c.commune_id)) for c in commune_outcomes),
            NewEvent(
                message=summary_proto(summary_of(results)),
                aggregate_id=str(consultation_id),
            ),
        ],
    )
    return consultation, results
