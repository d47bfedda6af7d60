"""Request and response bodies of the tables slice."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from comuna_consultations.transport import Strict
from comuna_consultations.vocabulary import TableKind

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
CommuneCode = Annotated[str, Field(min_length=1, max_length=64)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class LayoutOut(BaseModel):
    centres_created: int
    tables_created: int
    communes_added: int
    unchanged: int
    total: int
    changes: bool


class CentreIn(Strict):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=200)]
    address: Annotated[str, Field(max_length=500)] = ""
    commune_codes: Annotated[list[CommuneCode], Field(min_length=1, max_length=100)]


class TableIn(Strict):
    """One table, as one line of the import (its centre is created if new)."""

    centre_code: Code
    centre_name: Annotated[str, Field(min_length=1, max_length=200)]
    address: Annotated[str, Field(max_length=500)] = ""
    commune_code: CommuneCode
    table_code: Code
    table_kind: TableKind


class CentreOut(BaseModel):
    code: str
    name: str
    address: str
    commune_codes: list[str]


class CentrePage(BaseModel):
    items: list[CentreOut]
    next_page_token: str | None


class TableOut(BaseModel):
    code: str
    kind: TableKind
    centre_code: str
    commune_id: uuid.UUID
    commune_code: str


class TablePage(BaseModel):
    items: list[TableOut]
    next_page_token: str | None


class DocumentIn(Strict):
    """The document as shown (any spelling `comuna_platform.documents` accepts). Never stored,
    never logged: it becomes the roll entry key and is forgotten."""

    national_id: Annotated[str, Field(min_length=1, max_length=64)]


class CheckInOut(BaseModel):
    # Only whether the person may vote at this table now; never why not.
    may_vote: bool


class PaperCheckInOut(BaseModel):
    recorded: bool


class CandidateVotes(Strict):
    candidate_id: uuid.UUID
    votes: Count


Sha256 = Annotated[str, Field(min_length=64, max_length=64, pattern=r"^[0-9a-fA-F]{64}$")]


class TallySheetIn(Strict):
    votes: Annotated[list[CandidateVotes], Field(max_length=1000)]
    blank: Count
    null: Count
    checked_in: Count
    scan_sha256: Sha256

    @field_validator("votes")
    @classmethod
    def _once_each(cls, votes: list[CandidateVotes]) -> list[CandidateVotes]:
        if len({v.candidate_id for v in votes}) != len(votes):
            raise ValueError("each candidate appears once")
        return votes


class ConfirmIn(Strict):
    # The sheet the confirming officer read (a correction meanwhile gets a new id).
    sheet_id: uuid.UUID


class TallySheetOut(BaseModel):
    id: uuid.UUID
    table_code: str
    commune_id: uuid.UUID
    votes: list[CandidateVotes]
    blank: int
    null: int
    checked_in: int
    scan_sha256: str
    submitted_at: datetime
    confirmed: bool
    confirmed_at: datetime | None
