"""The schedule and voting windows of a consultation (implemented in `domain/schedules.py`, where
every slice may reach them; re-exported here under the name of issue 8's shared design)."""

from __future__ import annotations

from comuna_consultations.domain.schedules import schedule_from, schedule_of, voting_windows

__all__ = ["schedule_from", "schedule_of", "voting_windows"]
