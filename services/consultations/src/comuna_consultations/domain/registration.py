"""Who may change a commune's candidates, and when: shared by the lifecycle slice (one candidate)
and the assemblies slice (a prioritised list)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from comuna_consultations.domain.consultations import commune_not_found, not_found
from comuna_consultations.domain.lifecycle import require_status
from comuna_consultations.domain.phases import require_registration_open
from comuna_consultations.domain.schedules import schedule_from
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Consultation, ConsultationCommune
from comuna_consultations.vocabulary import ConsultationStatus
from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.auth.roles import Role
from comuna_platform.uow import UnitOfWork


async def lock_for_registration(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    *,
    now: datetime,
    lineages: TerritoryLineages,
) -> Consultation:
    """The consultation, locked FOR SHARE, once the caller may change this commune's candidates
    now: spokesperson of the commune (or operator), registration open on the clock.

    FOR SHARE: an amendment of the schedule (FOR UPDATE) waits for this transaction, so the
    dates checked here hold until it commits. The commune's row is locked FOR UPDATE so that one
    commune's candidate writes run one at a time (the maximum is a count)."""
    session = uow.session
    consultation = await repository.consultation_by_id(session, consultation_id, lock="share")
    if consultation is None:
        raise not_found(consultation_id)
    query = (
        select(ConsultationCommune)
        .where(ConsultationCommune.consultation_id == consultation_id, ConsultationCommune.commune_id == commune_id)
        .with_for_update()
    )
    commune = (await session.execute(query)).scalar_one_or_none()
    if commune is None:
        raise commune_not_found(commune_id)
    # The commune's code as snapshotted when the consultation opened, not anything the caller
    # sent; where it sits today comes from identity's register.
    caller.require([Role.SPOKESPERSON, Role.OPERATOR], await lineages.of(commune.code))
    require_status(consultation.status, ConsultationStatus.OPEN)
    require_registration_open(schedule_from(consultation), now)
    return consultation
