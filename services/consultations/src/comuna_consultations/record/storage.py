"""The record slice's data: the consultation logs of `storage.record`, and whether a
consultation still has a commune voting (the entries' visibility)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.domain.schedules import schedule_from, voting_windows
from comuna_consultations.storage.models import Consultation
from comuna_consultations.storage.record import consultation_log

__all__ = ["consultation_log", "nobody_votes"]


async def nobody_votes(session: AsyncSession, consultation: Consultation, now: datetime) -> bool:
    """The national window and every postponed commune's are closed at `now`."""
    if not schedule_from(consultation).voting.closed(now):
        return False
    windows = await voting_windows(session, consultation.id)
    return all(window is None or window.closed(now) for window in windows.values())
