"""Use cases of the roll slice: ask identity to freeze the roll, and read its load state."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from comuna_consultations.domain.consultations import existing
from comuna_consultations.domain.identity import RollSource
from comuna_consultations.domain.lifecycle import require_status
from comuna_consultations.domain.phases import require_phase
from comuna_consultations.domain.schedules import schedule_from
from comuna_consultations.roll import storage
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import RollLoad
from comuna_consultations.vocabulary import ConsultationStatus, RollLoadStatus
from comuna_platform.auth.access import Caller
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Conflict, InvalidInput, NotFound
from comuna_platform.uow import UnitOfWork


async def request_roll(
    uow: UnitOfWork, source: RollSource, caller: Caller, consultation_id: uuid.UUID, *, cutoff: date, now: datetime
) -> RollLoad:
    """Ask identity to freeze the roll at `cutoff` (idempotent); the loader does the rest.
    Only before voting opens on the clock (`roll_request_closed`)."""
    caller.require_national(Role.OPERATOR)
    consultation = await existing(uow, consultation_id)
    session = uow.session
    current = await repository.roll_load(session, consultation_id)
    if current is not None:
        if current.cutoff != cutoff:
            raise Conflict(
                f"the roll was already frozen with the cut-off {current.cutoff.isoformat()}",
                code="roll_cutoff_conflict",
            )
        return current
    require_status(consultation.status, ConsultationStatus.OPEN)
    schedule = schedule_from(consultation)
    require_phase(schedule, now, schedule.accepts_roll_request(now), "requesting the roll", "roll_request_closed")
    voting_day = consultation.voting_opens_at.astimezone(UTC).date()
    if cutoff > voting_day:
        raise InvalidInput("the cut-off must not be after the voting day", code="roll_dates_invalid", field="cutoff")
    communes = [c.commune_id for c in await repository.communes_of(session, consultation_id)]
    # Identity records the terms idempotently: a retry after a lost answer freezes nothing twice.
    await source.freeze_roll(
        consultation_id=consultation_id, cutoff=cutoff, voting_day=voting_day, commune_ids=communes
    )
    await storage.insert_load(
        session,
        {
            "consultation_id": consultation_id,
            "cutoff": cutoff,
            "voting_day": voting_day,
            "status": RollLoadStatus.REQUESTED,
        },
    )
    load = await repository.roll_load(session, consultation_id)
    assert load is not None
    if load.cutoff != cutoff:  # a concurrent request with another cut-off won the insert
        raise Conflict(
            f"the roll was already frozen with the cut-off {load.cutoff.isoformat()}", code="roll_cutoff_conflict"
        )
    return load


async def roll_state(uow: UnitOfWork, consultation_id: uuid.UUID) -> RollLoad:
    await existing(uow, consultation_id)
    load = await repository.roll_load(uow.session, consultation_id)
    if load is None:
        raise NotFound("the roll of this consultation has not been requested", code="roll_not_found")
    return load
