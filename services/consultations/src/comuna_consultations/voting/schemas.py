"""Request and response bodies of the voting slice."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from comuna_consultations.transport import Strict
from comuna_consultations.vocabulary import BallotChannel


class BallotIn(Strict):
    commune_id: uuid.UUID
    candidate_id: uuid.UUID
    national_id: str = Field(
        min_length=1,
        max_length=20,
        description="The voter's document (e.g. V-12.345.678); matched against the roll, never stored.",
    )
    channel: BallotChannel


class BallotOut(BaseModel):
    ballot_id: uuid.UUID
    receipt: str = Field(description="The ballot id: proves the ballot was stored, does not reveal the choice.")


class ReceiptOut(BaseModel):
    receipt: str
    recorded: bool
