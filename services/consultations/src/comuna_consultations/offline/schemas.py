"""REST shapes of the offline slice."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, Field

from comuna_consultations.transport import Strict

# A blinded entry key as the device found it in its snapshot (hex of a 32-byte point).
CheckinKey = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


class SnapshotOut(BaseModel):
    # base64 of the canonical JSON snapshot (what is signed: verify it before parsing)
    payload: str
    signature: str
    key_id: str
    algorithm: str
    # base64 of the table's sync key, which MACs the device's batches: keep it off the SQLite file
    sync_key: str


class SnapshotKeyOut(BaseModel):
    key_id: str
    algorithm: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key


class SnapshotKeysOut(BaseModel):
    keys: list[SnapshotKeyOut]


class BallotCountIn(Strict):
    candidate_id: uuid.UUID | None = Field(description="null: blank ballots")
    count: int = Field(ge=0, le=1_000_000)


class SyncIn(Strict):
    batch_id: uuid.UUID = Field(
        description="chosen by the device; the same batch sent again is answered, not re-written"
    )
    snapshot_digest: str = Field(
        pattern="^[0-9a-f]{64}$", description="SHA-256 of the snapshot payload the device holds"
    )
    checkins: list[CheckinKey] = Field(max_length=20_000)
    ballots: list[BallotCountIn] = Field(max_length=1_000)
    null_votes: int = Field(default=0, ge=0, le=1_000_000, description="spoiled votes of a paper-mode tally")
    mac: str = Field(max_length=100, description="base64 HMAC-SHA256 of the batch with the table's sync key")


class SyncOut(BaseModel):
    batch_id: uuid.UUID
    recorded: bool
    # The batch's own sizes, echoed (never a count of the server's)
    checkins: int
    ballots: int
    null_votes: int
