"""Response bodies of the voter roll's public reads."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from comuna_identity.vocabulary import RollStatus


class CouncilCountOut(BaseModel):
    council_id: uuid.UUID
    voters: int


class CommuneCountOut(BaseModel):
    commune_id: uuid.UUID
    voters: int
    councils: list[CouncilCountOut]


class RollOut(BaseModel):
    consultation_id: uuid.UUID
    status: RollStatus
    cutoff: date
    voting_day: date
    entry_count: int | None = Field(description="Voters on the roll; null until frozen.")
    digest: str | None = Field(
        description="SHA-256 (hex) over the entries sorted by voter key, encoded as docs/voter-roll.md says."
    )
    frozen_at: datetime | None
    communes: list[CommuneCountOut] = Field(description="Voters per commune and per council; empty until frozen.")


class PlaceOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str


class PollingPlaceOut(BaseModel):
    kind: str = Field(description="`communal_council` until voting centres exist.")
    place: PlaceOut
    note: str


class MyRollOut(BaseModel):
    consultation_id: uuid.UUID
    on_roll: bool
    cutoff: date
    voting_day: date
    commune: PlaceOut | None
    council: PlaceOut | None
    polling_place: PollingPlaceOut | None
