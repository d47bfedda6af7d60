"""Request and response bodies of identity's REST API."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from comuna_identity.vocabulary import TerritoryKind

CODE_PATTERN = r"^[A-Z0-9]+(\.[A-Z0-9]+)*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TerritoryIn(Strict):
    code: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN, examples=["VE.01.01.C0001"])
    name: str = Field(min_length=1, max_length=200)
    kind: TerritoryKind
    parent_code: str | None = Field(default=None, max_length=64, pattern=CODE_PATTERN)


class TerritoryOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    kind: TerritoryKind
    parent_id: uuid.UUID | None


class TerritoryDetail(TerritoryOut):
    ancestors: list[TerritoryOut]


class TerritoryPage(BaseModel):
    items: list[TerritoryOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class ResidentIn(Strict):
    national_id: str = Field(min_length=1, max_length=20, description="Held only in transit; stored as a keyed hash.")
    birth_date: date
    council_code: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)


class ResidentBatchIn(Strict):
    residents: list[ResidentIn] = Field(min_length=1, max_length=1000)


class ResidentOut(BaseModel):
    id: uuid.UUID


class ResidentBatchOut(BaseModel):
    ids: list[uuid.UUID]
