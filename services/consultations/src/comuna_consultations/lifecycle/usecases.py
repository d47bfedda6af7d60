"""Use cases of a consultation's life: open it with its published schedule, record the
assemblies' candidates while registration is open on the clock, amend the schedule, hold a
commune, and read what they wrote.

Each use case validates everything before it writes, and writes its state change and its event
in the unit of work it was given (the outbox makes the event exist iff the change committed).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from comuna_consultations.domain import schedules as phases_storage
from comuna_consultations.domain.consultations import (
    StatusWatcher,
    existing,
    existing_commune,
    not_found,
)
from comuna_consultations.domain.identity import CommuneDirectory
from comuna_consultations.domain.lifecycle import require_status
from comuna_consultations.domain.phases import Schedule, VotingWindow
from comuna_consultations.domain.registration import lock_for_registration
from comuna_consultations.domain.schedules import schedule_from
from comuna_consultations.lifecycle import storage
from comuna_consultations.lifecycle.events import CandidateRecorded, CommuneHeld, ConsultationOpened, ScheduleAmended
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import (
    Candidate,
    CommuneHold,
    Consultation,
    ConsultationCommune,
    ScheduleAmendment,
)
from comuna_consultations.vocabulary import ConsultationStatus, HoldKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Rules:
    """The declared rules of prioritisation of a cycle (per commune)."""

    max_candidates: int = 10
    funds_per_commune: int = 1_000_000  # minor units: 10,000.00 USD
    funds_currency: str = "USD"


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
    rules: Rules = Rules(),
) -> Consultation:
    """Create an open consultation with a snapshot of every commune identity knows.

    The transaction stays open while identity lists the communes (a few seconds nationwide):
    acceptable for an operator act done four times a year, and it keeps the unit of work whole.
    """
    caller.require_national(Role.OPERATOR)
    schedule.require_ordered()
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
        "status": ConsultationStatus.OPEN,
        **{f.name: getattr(schedule, f.name) for f in fields(schedule)},
        "max_candidates": rules.max_candidates,
        "funds_per_commune": rules.funds_per_commune,
        "funds_currency": rules.funds_currency,
        "commune_count": len(communes),
    }
    if not await storage.insert_consultation(session, row):
        raise _exists(code)
    await storage.insert_communes(
        session,
        [{"consultation_id": consultation_id, "commune_id": c.id, "code": c.code, "name": c.name} for c in communes],
    )
    await uow.stage(
        ConsultationOpened(
            consultation_id,
            code,
            len(communes),
            schedule,
            rules.max_candidates,
            rules.funds_per_commune,
            rules.funds_currency,
        ),
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
    category: str
    estimated_cost: int
    currency: str = "USD"
    proposal_id: uuid.UUID | None = None
    proposing_council_id: uuid.UUID | None = None


def check_within_rules(consultation: Consultation, new: NewCandidate) -> None:
    """422 unless the candidate respects the cycle's declared rules (cost within the funds
    announced per commune, in their currency; a place within the maximum)."""
    if new.currency != consultation.funds_currency:
        raise InvalidInput(f"costs are in {consultation.funds_currency} in this consultation", code="currency_mismatch")
    if new.estimated_cost > consultation.funds_per_commune:
        raise InvalidInput(
            f"the estimated cost {new.estimated_cost} exceeds the funds announced per commune"
            f" ({consultation.funds_per_commune})",
            code="cost_exceeds_funds",
        )
    if new.assembly_priority > consultation.max_candidates:
        raise InvalidInput(
            f"a commune has at most {consultation.max_candidates} candidates", code="too_many_candidates"
        )


async def record_candidate(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    new: NewCandidate,
    *,
    now: datetime,
    lineages: TerritoryLineages,
) -> uuid.UUID:
    """Record one of a commune's assembly candidates; only while registration is open."""
    consultation = await lock_for_registration(uow, caller, consultation_id, commune_id, now=now, lineages=lineages)
    check_within_rules(consultation, new)
    if await storage.candidate_count(uow.session, consultation_id, commune_id) >= consultation.max_candidates:
        raise InvalidInput(
            f"a commune has at most {consultation.max_candidates} candidates", code="too_many_candidates"
        )
    return await insert_candidate(uow, consultation_id, commune_id, new)


async def insert_candidate(
    uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID, new: NewCandidate
) -> uuid.UUID:
    candidate_id = new_id()
    inserted = await storage.insert_candidate(
        uow.session,
        {
            "id": candidate_id,
            "consultation_id": consultation_id,
            "commune_id": commune_id,
            "title": new.title,
            "description": new.description,
            "assembly_priority": new.assembly_priority,
            "category": new.category,
            "estimated_cost": new.estimated_cost,
            "currency": new.currency,
            "proposal_id": new.proposal_id,
            "proposing_council_id": new.proposing_council_id,
        },
    )
    if not inserted:
        raise Conflict(
            f"the commune already has a candidate with priority {new.assembly_priority}",
            code="candidate_priority_taken",
        )
    await uow.stage(
        CandidateRecorded(
            consultation_id,
            candidate_id,
            commune_id,
            new.title,
            new.assembly_priority,
            new.category,
            new.estimated_cost,
            new.currency,
            new.proposal_id,
            new.proposing_council_id,
        ),
        aggregate_id=str(consultation_id),
    )
    return candidate_id


async def amend_schedule(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    changes: Mapping[str, datetime],
    *,
    reason: str,
    now: datetime,
    watcher: StatusWatcher,
) -> Consultation:
    """Move future dates of the schedule (national operator, reason required, order kept).

    FOR UPDATE on the consultation row: ballots (FOR KEY SHARE) and candidate writes (FOR SHARE)
    in flight finish first, later ones are checked against the amended dates."""
    caller.require_national(Role.OPERATOR)
    if not changes:
        raise InvalidInput("name at least one date to move", code="schedule_invalid")
    if not reason.strip():
        raise InvalidInput("an amendment needs a reason", code="reason_required")
    session = uow.session
    consultation = await repository.consultation_by_id(session, consultation_id, lock="update")
    if consultation is None:
        raise not_found(consultation_id)
    require_status(consultation.status, ConsultationStatus.OPEN)
    before = schedule_from(consultation)
    moved = {name: when for name, when in changes.items() if getattr(before, name, None) != when}
    if not moved:
        raise InvalidInput("the dates given are the dates already published", code="schedule_unchanged")
    after = before.amended(moved, now)
    for name, when in moved.items():
        setattr(consultation, name, when)
    amendment_id = new_id()
    await storage.insert_amendment(
        session,
        {
            "id": amendment_id,
            "consultation_id": consultation_id,
            "changes": {name: [getattr(before, name).isoformat(), when.isoformat()] for name, when in moved.items()},
            "reason": reason,
            "amended_by": caller.subject,
            "amended_at": now,
        },
    )
    await session.flush()
    await uow.stage(
        ScheduleAmended(consultation_id, amendment_id, after, tuple(sorted(moved)), reason, caller.subject),
        aggregate_id=str(consultation_id),
    )
    uow.after_commit(lambda: watcher.invalidate(consultation_id))
    return consultation


@dataclass(frozen=True, slots=True)
class NewHold:
    kind: HoldKind
    reason: str
    window: VotingWindow | None = None  # postponed only


async def hold_commune(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    hold: NewHold,
    *,
    now: datetime,
    watcher: StatusWatcher,
) -> CommuneHold:
    """Exclude a commune or postpone it to its own window (national operator), before its voting
    opens, with a recorded reason. Once per commune: a hold is public history, not a setting."""
    caller.require_national(Role.OPERATOR)
    if not hold.reason.strip():
        raise InvalidInput("a hold needs a reason", code="reason_required")
    session = uow.session
    consultation = await repository.consultation_by_id(session, consultation_id, lock="update")
    if consultation is None:
        raise not_found(consultation_id)
    await existing_commune(uow, consultation_id, commune_id)
    require_status(consultation.status, ConsultationStatus.OPEN)
    schedule = schedule_from(consultation)
    if await phases_storage.hold_of(session, consultation_id, commune_id) is not None:
        raise Conflict("this commune already has a hold", code="commune_already_held")
    # No hold yet: the commune's window is the national one.
    if now >= schedule.voting_opens_at:
        raise FailedPrecondition(
            "the commune's voting has already opened", code="voting_already_open", phase=str(schedule.phase_at(now))
        )
    window = hold.window
    if hold.kind == HoldKind.POSTPONED:
        if window is None or not window.opens_at < window.closes_at:
            raise InvalidInput("a postponed commune needs an ordered window", code="window_invalid")
        if window.opens_at < schedule.voting_opens_at or window.closes_at > schedule.certification_opens_at:
            raise InvalidInput(
                "a postponed window opens no earlier than national voting and closes before certification opens",
                code="window_invalid",
            )
    elif window is not None:
        raise InvalidInput("an excluded commune has no window", code="window_invalid")
    row = CommuneHold(
        consultation_id=consultation_id,
        commune_id=commune_id,
        kind=hold.kind,
        voting_opens_at=window.opens_at if window else None,
        voting_closes_at=window.closes_at if window else None,
        reason=hold.reason,
        held_by=caller.subject,
        held_at=now,
    )
    session.add(row)
    await session.flush()
    await uow.stage(
        CommuneHeld(
            consultation_id,
            commune_id,
            hold.kind,
            row.voting_opens_at,
            row.voting_closes_at,
            hold.reason,
            caller.subject,
        ),
        aggregate_id=str(consultation_id),
    )
    uow.after_commit(lambda: watcher.invalidate(consultation_id))
    return row


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


async def list_holds(uow: UnitOfWork, consultation_id: uuid.UUID) -> Sequence[CommuneHold]:
    await existing(uow, consultation_id)
    return await phases_storage.holds_of(uow.session, consultation_id)


async def list_amendments(uow: UnitOfWork, consultation_id: uuid.UUID) -> Sequence[ScheduleAmendment]:
    await existing(uow, consultation_id)
    return await storage.amendments_of(uow.session, consultation_id)


async def candidate(uow: UnitOfWork, candidate_id: uuid.UUID) -> Candidate:
    row = await uow.session.get(Candidate, candidate_id)
    assert row is not None
    return row


async def list_candidates(uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID) -> Sequence[Candidate]:
    await existing(uow, consultation_id)
    await existing_commune(uow, consultation_id, commune_id)
    return await storage.candidates_of_commune(uow.session, consultation_id, commune_id)
