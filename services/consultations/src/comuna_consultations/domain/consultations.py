"""Rules every slice shares: who may act on a whole consultation, how a consultation is found
or locked for a status change, and what "not found" says."""

from __future__ import annotations

import uuid
from typing import Protocol

from comuna_consultations.domain.lifecycle import check_transition
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Consultation, ConsultationCommune
from comuna_consultations.vocabulary import ConsultationStatus
from comuna_platform.auth.access import Caller
from comuna_platform.auth.roles import Role
from comuna_platform.errors import NotFound
from comuna_platform.uow import UnitOfWork


def not_found(consultation_id: uuid.UUID) -> NotFound:
    return NotFound(f"consultation {consultation_id} does not exist", code="consultation_not_found")


def commune_not_found(commune_id: uuid.UUID) -> NotFound:
    return NotFound(f"commune {commune_id} is not part of this consultation", code="commune_not_found")


class StatusWatcher(Protocol):
    """Something that keeps a copy of a consultation's status (the voting slice's per-process
    snapshot) and must forget it once a status change committed."""

    def invalidate(self, consultation_id: uuid.UUID) -> None: ...


async def existing(uow: UnitOfWork, consultation_id: uuid.UUID) -> Consultation:
    consultation = await repository.consultation_by_id(uow.session, consultation_id)
    if consultation is None:
        raise not_found(consultation_id)
    return consultation


async def existing_commune(uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID) -> ConsultationCommune:
    commune = await repository.commune(uow.session, consultation_id, commune_id)
    if commune is None:
        raise commune_not_found(commune_id)
    return commune


async def lock_for_transition(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    target: ConsultationStatus,
    watcher: StatusWatcher,
) -> Consultation:
    """The consultation, locked FOR UPDATE, once `target` is known to be its next step.

    FOR UPDATE conflicts with the FOR KEY SHARE every ballot takes and with the FOR SHARE of
    candidate recording: the transition waits for those in flight, and later ones see it. The
    watcher forgets the consultation once the change committed (never if it rolls back).
    """
    # Opening, moving and certifying a consultation are national acts (held at the country root).
    caller.require_national(Role.OPERATOR)
    consultation = await repository.consultation_by_id(uow.session, consultation_id, lock="update")
    if consultation is None:
        raise not_found(consultation_id)
    check_transition(consultation.status, target)
    uow.after_commit(lambda: watcher.invalidate(consultation_id))
    return consultation
