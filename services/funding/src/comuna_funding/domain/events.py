"""What funding announces, as plain values; `comuna_funding.messages` turns them into the event
messages of `proto/comuna/funding/v1/events.proto`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class AllocationCreated:
    allocation_id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    commune_code: str
    candidate_id: uuid.UUID
    title: str
    amount_minor: int
    currency: str
    funding_source: str
    transfer_id: uuid.UUID


@dataclass(frozen=True)
class TrancheDisbursed:
    disbursement_id: uuid.UUID
    allocation_id: uuid.UUID
    project_id: uuid.UUID
    milestone_id: uuid.UUID
    commune_id: uuid.UUID
    amount_minor: int
    currency: str
    transfer_id: uuid.UUID


@dataclass(frozen=True)
class TrancheRejected:
    disbursement_id: uuid.UUID
    allocation_id: uuid.UUID | None
    project_id: uuid.UUID
    milestone_id: uuid.UUID
    commune_id: uuid.UUID | None
    amount_minor: int
    currency: str
    reason: str


@dataclass(frozen=True)
class AllocationReleased:
    """A cancelled project's unspent commitment went back to its funder."""

    allocation_id: uuid.UUID
    project_id: uuid.UUID
    commune_id: uuid.UUID
    funding_source: str
    amount_minor: int
    currency: str
    transfer_id: uuid.UUID
    voided_milestone_ids: tuple[uuid.UUID, ...]
    reason: str
