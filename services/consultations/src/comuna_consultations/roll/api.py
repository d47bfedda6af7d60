"""REST transport of the roll slice: freeze the voter roll (operator) and follow its load."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, status

from comuna_consultations.roll import usecases
from comuna_consultations.roll.schemas import RollFreezeIn, RollLoadOut
from comuna_consultations.storage.models import RollLoad
from comuna_consultations.transport import ClockDep, IdentityDep, Operator
from comuna_consultations.vocabulary import RollLoadStatus
from comuna_platform.http.deps import UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["consultations"])


def _out(load: RollLoad) -> RollLoadOut:
    return RollLoadOut(
        consultation_id=load.consultation_id,
        status=RollLoadStatus(load.status),
        cutoff=load.cutoff,
        voting_day=load.voting_day,
        expected_count=load.expected_count,
        loaded=load.loaded_seq,
        digest=load.expected_digest.hex() if load.expected_digest else None,
        error=load.error,
        verified_at=load.verified_at,
    )


@router.post(
    "/consultations/{consultation_id}/roll:freeze",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RollLoadOut,
    summary="Ask identity to freeze the voter roll at a cut-off (operator); loaded and verified in the background",
)
async def freeze_roll(
    consultation_id: uuid.UUID,
    body: RollFreezeIn,
    *,
    caller: Operator,
    uow: UnitOfWorkDep,
    identity: IdentityDep,
    clock: ClockDep,
) -> RollLoadOut:
    cutoff = body.cutoff or datetime.now(UTC).date()
    load = await usecases.request_roll(uow, identity, caller, consultation_id, cutoff=cutoff, now=clock.now())
    return _out(load)


@router.get(
    "/consultations/{consultation_id}/roll",
    response_model=RollLoadOut,
    summary="The voter roll's load state: requested, loading, verified or refused (public)",
)
async def get_roll(consultation_id: uuid.UUID, uow: UnitOfWorkDep) -> RollLoadOut:
    return _out(await usecases.roll_state(uow, consultation_id))
