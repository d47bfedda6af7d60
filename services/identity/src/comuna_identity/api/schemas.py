"""Request and response bodies of identity's REST API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from comuna_identity.vocabulary import TerritoryKind, TerritoryStatus
from comuna_platform.auth.roles import Role
from comuna_platform.documents import DocumentType

# Codes are human identifiers (they no longer encode where a unit sits): letters, digits and
# single separators.
CODE_PATTERN = r"^[A-Z0-9]+([._-][A-Z0-9]+)*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TerritoryIn(Strict):
    code: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN, examples=["VE-01-01-C0001"])
    name: str = Field(min_length=1, max_length=200)
    kind: TerritoryKind
    parent_code: str | None = Field(default=None, max_length=64, pattern=CODE_PATTERN)
    valid_from: date | None = Field(default=None, description="The first day the unit exists; default today (UTC).")


class TerritoryChangeIn(Strict):
    """A change from `valid_from` on; the fields not given keep their value."""

    valid_from: date
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: TerritoryKind | None = Field(default=None, description="e.g. a communal circuit promoted to a commune")
    parent_code: str | None = Field(default=None, max_length=64, pattern=CODE_PATTERN, description="a move")
    status: TerritoryStatus | None = Field(default=None, description="`dissolved` dissolves the unit")


class TerritoryOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    kind: TerritoryKind
    parent_id: uuid.UUID | None
    status: TerritoryStatus
    # The version shown: in force from valid_from until valid_until (exclusive; null = open).
    valid_from: date
    valid_until: date | None


class TerritoryChangeOut(TerritoryOut):
    changed: bool = Field(description="False when the unit already was so from that day: nothing was written.")


class TerritoryVersionOut(BaseModel):
    valid_from: date
    valid_until: date | None
    name: str
    kind: TerritoryKind
    parent_id: uuid.UUID | None
    status: TerritoryStatus


class TerritoryDetail(TerritoryOut):
    ancestors: list[TerritoryOut]
    history: list[TerritoryVersionOut]


class TerritoryPage(BaseModel):
    items: list[TerritoryOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class ResidentIn(Strict):
    national_id: str = Field(min_length=1, max_length=40, description="Held only in transit; stored as a keyed hash.")
    document_type: DocumentType | None = Field(
        default=None, description="V, E or P; default: the number's letter, else V."
    )
    birth_date: date
    council_code: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
    valid_from: date | None = Field(default=None, description="Living in the council since; default: today.")


class ResidentMoveIn(Strict):
    national_id: str = Field(min_length=1, max_length=40, description="Held only in transit.")
    document_type: DocumentType | None = None
    council_code: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
    valid_from: date = Field(description="The first day in the new council.")


class ResidentMoveOut(BaseModel):
    id: uuid.UUID
    moved: bool = Field(description="False when the resident already lived there from that day.")


class ResidentBatchIn(Strict):
    residents: list[ResidentIn] = Field(min_length=1, max_length=1000)


class ResidentOut(BaseModel):
    id: uuid.UUID


class ResidentBatchOut(BaseModel):
    ids: list[uuid.UUID]


Subject = Annotated[str, Field(min_length=1, max_length=255, description="A Keycloak user id (the token's `sub`).")]
TABLE_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class RoleAssignmentIn(Strict):
    subject: Subject
    role: Role
    territory_code: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
    consultation_id: uuid.UUID | None = Field(default=None, description="Table officers only.")
    table_code: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=TABLE_CODE_PATTERN, description="Table officers only."
    )
    valid_from: AwareDatetime | None = Field(default=None, description="Default: now.")
    valid_until: AwareDatetime | None = Field(default=None, description="Default: open-ended.")


class RoleAssignmentOut(BaseModel):
    id: uuid.UUID
    subject: str
    role: Role
    territory_id: uuid.UUID
    territory_code: str
    consultation_id: uuid.UUID | None
    table_code: str | None
    valid_from: datetime
    valid_until: datetime | None
    granted_by: str
    granted_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None


class RoleAssignmentPage(BaseModel):
    items: list[RoleAssignmentOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class RevokeIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


class MeOut(BaseModel):
    subject: str
    # The assignments in force now.
    assignments: list[RoleAssignmentOut]
    resident_id: uuid.UUID | None


class NationalIdIn(Strict):
    national_id: str = Field(min_length=1, max_length=20, description="Held only in transit; never stored.")


class LinkIn(NationalIdIn):
    subject: Subject


class LinkedOut(BaseModel):
    resident_id: uuid.UUID
    subject: str


class EnrolmentCodeOut(BaseModel):
    resident_id: uuid.UUID
    code: str = Field(description="Shown once: identity keeps only its SHA-256.")
    expires_at: datetime


class RedeemIn(NationalIdIn):
    code: str = Field(min_length=1, max_length=32)


# --- audit log (AUDIT) ---------------------------------------------------------------------


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    object_kind: str
    object_id: str
    before_hash: str | None = Field(description="hex SHA-256 of the canonical JSON of the state before; null: none")
    after_hash: str | None = Field(description="hex SHA-256 of the canonical JSON of the state after; null: none")
    prev_hash: str = Field(description="hex entry_hash of the previous entry (64 zeros for seq 1)")
    entry_hash: str = Field(description="hex SHA-256 of this entry's canonical encoding (docs/audit.md)")


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_after_seq: int | None = Field(description="Pass as `after_seq` to get the next page; null on the last.")


class AuditHeadOut(BaseModel):
    seq: int = Field(description="seq of the last entry; 0 for an empty log")
    entry_hash: str = Field(description="hex entry_hash of the last entry (64 zeros for an empty log)")
    at: datetime | None
