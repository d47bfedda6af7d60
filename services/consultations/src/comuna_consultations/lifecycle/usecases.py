"""Use cases of a consultation's life: open it, record the assemblies' candidates, move it on,
and read what they wrote.

Each use case validates everything before it writes, and writes its state change and its event
in the unit of work it was given (the outbox makes the event exist iff the change committed).
"""

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
    not_found,
)
from comuna_consultations.domain.identity import CommuneDirectory
from comuna_consultations.domain.lifecycle import require_status
from comuna_consultations.domain.roll import require_verified_roll
from comuna_consultations.lifecycle import storage
from comuna_consultations.lifecycle.events import CandidateRecorded, ConsultationClosed, ConsultationOpened
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Candidate, Consultation, ConsultationCommune
from comuna_consultations.vocabulary import ConsultationStatus
from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork


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


def _exists(code: str) -> Conflict:
    return Conflict(f"a consultation with code {code} already exists", code="consultation_exists")


async def open_consultation(
    uow: UnitOfWork,
    identity: CommuneDirectory,
    caller: Caller,
    *,
    code: str,
    title: str,
    schedule: Schedule,
) -> Consultation:
    """Create a consultation in `assembly` with a snapshot of every commune identity knows.

    The transaction stays open while identity lists the communes (a few seconds nationwide):
    acceptable for an operator act done four times a year, and it keeps the unit of work whole.
    """
    caller.require_national(Role.OPERATOR)
    schedule.check()
    session = uow.session
    # Cheap early refusal, before asking identity for thousands of communes; the unique
    # constraint below is what actually decides under concurrency.
    if await storage.code_taken(session, code):
        raise _exists(code)
    communes = await identity.list_all_communes()
    if not communes:
        raise FailedPrecondition("identity knows no communes; register the territories first", code="no_communes")
    consultation_id = new_id()
    row = {
        "id": consultation_id,
        "code": code,
        "title": title,
        "status": ConsultationStatus.ASSEMBLY,
        "assemblies_open_at": schedule.assemblies_open_at,
        "voting_opens_at": schedule.voting_opens_at,
        "voting_closes_at": schedule.voting_closes_at,
        "commune_count": len(communes),
    }
    if not await storage.insert_consultation(session, row):
        raise _exists(code)
    await storage.insert_communes(
        session,
        [{"consultation_id": consultation_id, "commune_id": c.id, "code": c.code, "name": c.name} for c in communes],
    )
    await uow.stage(
        ConsultationOpened(consultation_id, code, len(communes), schedule.voting_opens_at, schedule.voting_closes_at),
        aggregate_id=str(consultation_id),
    )
    consultation = await repository.consultation_by_id(session, consultation_id)
    assert consultation is not None
    return consultation


@dataclass(frozen=True, slots=True)
class NewCandidate:
    title: str
    description: str
    assembly_priority: int


async def record_candidate(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    new: NewCandidate,
    *,
    lineages: TerritoryLineages,
) -> uuid.UUID:
    """Record one of a commune's assembly candidates; only while assemblies are running."""
    session = uow.session
    # FOR SHARE: start-voting (FOR UPDATE) waits for this transaction, so no candidate can
    # slip in after voting started (the ballot path relies on the candidate list being final).
    consultation = await repository.consultation_by_id(session, consultation_id, lock="share")
    if consultation is None:
        raise not_found(consultation_id)
    commune = await existing_commune(uow, consultation_id, commune_id)
    # The commune's code as snapshotted when the consultation opened, not anything the caller
    # sent; where it sits today comes from identity's register.
    caller.require([Role.SPOKESPERSON, Role.OPERATOR], await lineages.of(commune.code))
    require_status(consultation.status, ConsultationStatus.ASSEMBLY)
    candidate_id = new_id()
    inserted = await storage.insert_candidate(
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
    await uow.stage(
        CandidateRecorded(consultation_id, candidate_id, commune_id, new.title, new.assembly_priority),
        aggregate_id=str(consultation_id),
    )
    return candidate_id


async def start_voting(
    uow: UnitOfWork, caller: Caller, consultation_id: uuid.UUID, *, now: datetime, watcher: StatusWatcher
) -> Consultation:
    consultation = await lock_for_transition(uow, caller, consultation_id, ConsultationStatus.VOTING, watcher)
    # Ballots are matched against this consultation's own copy of the roll, never identity.
    await require_verified_roll(uow, consultation_id)
    consultation.status = ConsultationStatus.VOTING
    consultation.voting_started_at = now
    await uow.session.flush()
    return consultation


async def close(
    uow: UnitOfWork, caller: Caller, consultation_id: uuid.UUID, *, now: datetime, watcher: StatusWatcher
) -> Consultation:
    consultation = await lock_for_transition(uow, caller, consultation_id, ConsultationStatus.CLOSED, watcher)
    consultation.status = ConsultationStatus.CLOSED
    consultation.closed_at = now
    await uow.session.flush()
    # Exact: ballots in flight committed before our lock was granted; later ones see "closed".
    ballots = await repository.count_ballots(uow.session, consultation_id)
    await uow.stage(ConsultationClosed(consultation_id, ballots), aggregate_id=str(consultation_id))
    return consultation


# --- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsultationPage:
    items: Sequence[Consultation]
    more: bool


async def list_consultations(uow: UnitOfWork, *, after_code: str, limit: int) -> ConsultationPage:
    rows = await storage.list_consultations(uow.session, after_code=after_code, limit=limit + 1)
    return ConsultationPage(rows[:limit], len(rows) > limit)


@dataclass(frozen=True)
class CommunePage:
    items: Sequence[ConsultationCommune]
    more: bool


async def list_communes(uow: UnitOfWork, consultation_id: uuid.UUID, *, after_code: str, limit: int) -> CommunePage:
    await existing(uow, consultation_id)
    rows = await repository.communes_of(uow.session, consultation_id, after_code=after_code, limit=limit + 1)
    return CommunePage(rows[:limit], len(rows) > limit)


async def list_candidates(uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID) -> Sequence[Candidate]:
    await existing(uow, consultation_id)
    await existing_commune(uow, consultation_id, commune_id)
    return await storage.candidates_of_commune(uow.session, consultation_id, commune_id)
