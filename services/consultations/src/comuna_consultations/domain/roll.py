"""The rule every slice shares about the voter roll: voting needs a loaded, verified roll."""

from __future__ import annotations

import uuid

from comuna_consultations.storage import repository
from comuna_consultations.vocabulary import RollLoadStatus
from comuna_platform.errors import FailedPrecondition
from comuna_platform.uow import UnitOfWork


async def require_verified_roll(uow: UnitOfWork, consultation_id: uuid.UUID) -> None:
    load = await repository.roll_load(uow.session, consultation_id)
    if load is None:
        raise FailedPrecondition("the voter roll has not been frozen: POST .../roll:freeze first", code="roll_missing")
    if load.status != RollLoadStatus.VERIFIED:
        raise FailedPrecondition(
            f"the voter roll is not loaded and verified (it is {load.status})", code="roll_not_verified"
        )
