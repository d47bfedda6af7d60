"""What identity announces, as plain values; `comuna_identity.messages` turns them into the
event messages of `proto/comuna/identity/v1/events.proto`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from comuna_identity.storage.models import RoleAssignment
from comuna_identity.storage.territory_history import TerritoryAt


@dataclass(frozen=True)
class TerritoryCreated:
    territory: TerritoryAt
    parent_id: uuid.UUID | None


@dataclass(frozen=True)
class TerritoryChanged:
    """The unit's version from `territory.valid_from` on."""

    territory: TerritoryAt


@dataclass(frozen=True)
class TerritoriesImported:
    created: int
    changed: int


@dataclass(frozen=True)
class ResidentRegistered:
    resident_id: uuid.UUID
    council_id: uuid.UUID
    commune_id: uuid.UUID


@dataclass(frozen=True)
class RoleAssignmentGranted:
    assignment: RoleAssignment
    territory: TerritoryAt


@dataclass(frozen=True)
class RoleAssignmentRevoked:
    subject: str
    assignment_id: uuid.UUID
    reason: str
