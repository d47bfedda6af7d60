"""Request and response bodies of the roll slice."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from comuna_consultations.transport import Strict
from comuna_consultations.vocabulary import RollLoadStatus


class RollFreezeIn(Strict):
    cutoff: date | None = Field(default=None, description="Residence and status as of this day; default today (UTC).")


class RollLoadOut(BaseModel):
    consultation_id: uuid.UUID
    status: RollLoadStatus
    cutoff: date
    voting_day: date
    expected_count: int | None = Field(description="Entries identity froze; null until it has.")
    loaded: int = Field(description="Entries stored here so far.")
    digest: str | None = Field(description="Identity's published digest (hex); verified against the stored entries.")
    error: str | None
    verified_at: datetime | None
