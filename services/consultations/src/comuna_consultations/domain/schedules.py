"""A consultation's schedule and its communes' voting windows as stored (PHASES' contract with
the ballot path and the results: see `domain/phases.py` for what they must check).

Here, in the shared domain, because the slices may not import one another; `lifecycle/
phases_storage.py` re-exports the same functions under the name the issue's design gave them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.domain.phases import Schedule, VotingWindow
from comuna_consultations.storage.models import CommuneHold, Consultation
from comuna_consultations.storage.repository import consultations
from comuna_consultations.vocabulary import HoldKind

commune_holds = cast(Table, CommuneHold.__table__)

SCHEDULE_COLUMNS = (
    consultations.c.assemblies_open_at,
    consultations.c.candidates_close_at,
    consultations.c.roll_cutoff_at,
    consultations.c.voting_opens_at,
    consultations.c.voting_closes_at,
    consultations.c.certification_opens_at,
)


def schedule_from(c: Consultation) -> Schedule:
    return Schedule(
        c.assemblies_open_at,
        c.candidates_close_at,
        c.roll_cutoff_at,
        c.voting_opens_at,
        c.voting_closes_at,
        c.certification_opens_at,
    )


async def schedule_of(session: AsyncSession | AsyncConnection, consultation_id: uuid.UUID) -> Schedule | None:
    row = (await session.execute(select(*SCHEDULE_COLUMNS).where(consultations.c.id == consultation_id))).first()
    return None if row is None else Schedule(*row)


async def voting_windows(
    session: AsyncSession | AsyncConnection, consultation_id: uuid.UUID
) -> dict[uuid.UUID, VotingWindow | None]:
    """Only the communes whose window differs from the national one: postponed -> its own
    window, excluded -> None."""
    query = select(
        commune_holds.c.commune_id,
        commune_holds.c.kind,
        commune_holds.c.voting_opens_at,
        commune_holds.c.voting_closes_at,
    ).where(commune_holds.c.consultation_id == consultation_id)
    windows: dict[uuid.UUID, VotingWindow | None] = {}
    for commune_id, kind, opens_at, closes_at in (await session.execute(query)).all():
        windows[commune_id] = VotingWindow(opens_at, closes_at) if kind == HoldKind.POSTPONED else None
    return windows


async def holds_of(session: AsyncSession, consultation_id: uuid.UUID) -> Sequence[CommuneHold]:
    query = select(CommuneHold).where(CommuneHold.consultation_id == consultation_id).order_by(CommuneHold.held_at)
    return (await session.execute(query)).scalars().all()


async def hold_of(session: AsyncSession, consultation_id: uuid.UUID, commune_id: uuid.UUID) -> CommuneHold | None:
    return await session.get(CommuneHold, (consultation_id, commune_id))


async def commune_window(
    session: AsyncSession, consultation: Consultation, commune_id: uuid.UUID
) -> VotingWindow | None:
    """When this commune votes: its hold's window (None if excluded), else the national one."""
    hold = await hold_of(session, consultation.id, commune_id)
    if hold is None:
        return schedule_from(consultation).voting
    if hold.kind == HoldKind.POSTPONED and hold.voting_opens_at is not None and hold.voting_closes_at is not None:
        return VotingWindow(hold.voting_opens_at, hold.voting_closes_at)
    return None
