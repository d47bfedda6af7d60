"""Request and response bodies of the voting slice."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from comuna_consultations.transport import Strict
from comuna_consultations.vocabulary import BallotChannel


class BallotIn(Strict):
    commune_id: uuid.UUID = Field(description="The commune whose ballot paper this is: the voter's commune.")
    # Required, null allowed: a blank ballot is an explicit `"candidate_id": null`, never a
    # forgotten field.
    candidate_id: uuid.UUID | None = Field(description="A candidate of the commune, or null for a blank ballot.")
    channel: BallotChannel = Field(
        description="`online`: the signed-in resident votes (no document, no table). `table`: the officer of an "
        "electronic table records the ballot of the person checked in by document."
    )
    national_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="table only: the voter's document (e.g. V-12.345.678); matched against the roll, never stored.",
    )
    table_code: str | None = Field(
        default=None, min_length=1, max_length=64, description="table only: the code of the officer's table."
    )


class BallotOut(BaseModel):
    ballot_id: uuid.UUID
    receipt: str = Field(
        description="128 random bits (22 characters), given to the voter only: its commitment is in the "
        "consultation's public record, so it proves the ballot was stored and counted in its batch; it reveals "
        "neither the choice nor the voter (docs/record.md)."
    )


class ReceiptOut(BaseModel):
    receipt: str
    recorded: bool
    commitment: str = Field(description="What the record holds of the receipt (docs/record.md, `comuna-ballots/v1`).")
    entry_index: int = Field(description="The log entry holding the commitment (its batch).")
    tree_size: int | None = Field(
        description="The size of the checkpoint the proof is against; null until a signed checkpoint covers the "
        "entry (a few seconds)."
    )
    inclusion_proof: list[str] | None = Field(
        description="RFC 6962 inclusion proof of the entry in that tree (standard base64 hashes)."
    )
    checkpoint: str | None = Field(description="That signed checkpoint (C2SP tlog-checkpoint).")
