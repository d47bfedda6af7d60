"""When each commune's counts may be shown and certified, from the consultation's schedule.

A commune's results are visible (and certifiable) only once its own voting window closed: the
national window, a postponed commune's own, or never for an excluded commune (no window).

The schedule and the holds come from `domain.schedules` (the consultation's six published dates,
and the communes whose window differs from the national one).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.domain.phases import VotingWindow
from comuna_consultations.domain.schedules import schedule_from, voting_windows
from comuna_consultations.storage.models import Consultation
from comuna_platform.errors import FailedPrecondition


@dataclass(frozen=True, slots=True)
class CommuneWindows:
    national: VotingWindow
    certification_opens_at: datetime
    # Communes whose window differs from the national one: their own, or None when excluded.
    exceptions: dict[uuid.UUID, VotingWindow | None] = field(default_factory=dict)

    def of(self, commune_id: uuid.UUID) -> VotingWindow | None:
        return self.exceptions.get(commune_id, self.national)

    def closed(self, commune_id: uuid.UUID, now: datetime) -> bool:
        window = self.of(commune_id)
        return window is not None and window.closed(now)

    def certifiable(self, commune_id: uuid.UUID, now: datetime) -> bool:
        """Its voting closed, and certification opened (no earlier than the commune's own close)."""
        return self.closed(commune_id, now) and now >= self.certification_opens_at


async def _schedule_and_exceptions(
    session: AsyncSession, consultation: Consultation
) -> tuple[VotingWindow, datetime, dict[uuid.UUID, VotingWindow | None]]:
    schedule = schedule_from(consultation)
    return schedule.voting, schedule.certification_opens_at, await voting_windows(session, consultation.id)


async def windows_of(session: AsyncSession, consultation: Consultation) -> CommuneWindows:
    national, certification_opens_at, exceptions = await _schedule_and_exceptions(session, consultation)
    return CommuneWindows(national, certification_opens_at, exceptions)


def not_closed(commune_id: uuid.UUID | None, window: VotingWindow | None) -> FailedPrecondition:
    """409 before a commune's (or the national) voting closed: says nothing of any count."""
    where = f"commune {commune_id}" if commune_id else "this consultation"
    if window is None:
        return FailedPrecondition(f"{where} does not vote (excluded)", code="commune_excluded")
    return FailedPrecondition(
        f"voting in {where} closes at {window.closes_at.isoformat()}; no result is shown before",
        code="voting_not_closed",
        closes_at=window.closes_at.isoformat(),
    )
