"""The development seed file: territories to ensure in the register and staff to create.

```json
{"territories": [{"code": "VE", "name": "Venezuela", "kind": "country", "parent_code": null}],
 "staff": [{"username": "operator", "email": "operator@example.org", "first_name": "Olga",
            "last_name": "Operator", "assignments": [{"role": "operator", "territory_code": "VE"}]}]}
```
Everything is checked before anything is applied: a bad file changes nothing.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from comuna_identity.domain.territories import check_placement
from comuna_identity.vocabulary import TerritoryKind
from comuna_platform.auth.roles import Role
from comuna_platform.errors import InvalidInput

# Keycloak stores usernames in lower case; refusing others keeps the seed and the realm equal.
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class SeedError(Exception):
    """The seed file cannot be used; the message says where and why, in one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SeedTerritory(_Strict):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+(\.[A-Za-z0-9]+)*$")
    name: str = Field(min_length=1, max_length=200)
    kind: TerritoryKind
    parent_code: str | None = None


class SeedAssignment(_Strict):
    role: Role
    territory_code: str = Field(min_length=1, max_length=64)
    consultation_id: uuid.UUID | None = None
    table_code: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _table_fields(self) -> SeedAssignment:
        if self.role is Role.RESIDENT:
            raise ValueError("residents are enrolled by a registrar, not seeded")
        is_table = self.role is Role.TABLE_OFFICER
        if is_table != (self.consultation_id is not None and self.table_code is not None):
            raise ValueError("consultation_id and table_code are required for table_officer and only for it")
        return self


class SeedStaff(_Strict):
    username: str = Field(pattern=USERNAME_PATTERN)
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    assignments: tuple[SeedAssignment, ...] = ()

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str | None) -> str | None:
        # Keycloak keeps emails in lower case; comparing as it stores them keeps a rerun at 0 changes.
        return value.lower() if value else value


class Seed(_Strict):
    territories: tuple[SeedTerritory, ...] = ()
    staff: tuple[SeedStaff, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Seed:
        for label, values in (
            ("territory code", [t.code for t in self.territories]),
            ("username", [s.username for s in self.staff]),
            ("email", [s.email for s in self.staff if s.email]),
        ):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{label} {repeated[0]!r} appears more than once")
        return self


def load_seed(path: Path) -> Seed:
    """Read and validate a seed file; raises SeedError with a one-line reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeedError(f"cannot read seed file {path}: {exc.__class__.__name__}: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeedError(f"seed file {path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    try:
        return Seed.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise SeedError(f"seed file {path}: {where}: {first['msg']}") from None


def check_seed_against(seed: Seed, known: dict[str, TerritoryKind]) -> None:
    """Check the seed's territories and assignments fit the register `known` (code -> kind).

    The seed's own territories count as known, in file order, so a parent may come first in
    the file or already be registered.
    """
    kinds = dict(known)
    for index, territory in enumerate(seed.territories):
        where = f"territories.{index}"
        if territory.parent_code is not None and territory.parent_code not in kinds:
            raise SeedError(
                f"seed: {where}: parent {territory.parent_code!r} is neither registered nor earlier in the file"
            )
        registered = kinds.get(territory.code)
        if registered is not None and registered != territory.kind:
            raise SeedError(
                f"seed: {where}: {territory.code!r} is registered as a {registered}, not a {territory.kind}"
            )
        parent_kind = kinds[territory.parent_code] if territory.parent_code is not None else None
        try:
            check_placement(kind=territory.kind, parent_kind=parent_kind)
        except InvalidInput as exc:
            raise SeedError(f"seed: {where}: {exc.detail}") from None
        kinds[territory.code] = territory.kind
    for s_index, staff in enumerate(seed.staff):
        for a_index, assignment in enumerate(staff.assignments):
            if assignment.territory_code not in kinds:
                raise SeedError(
                    f"seed: staff.{s_index}.assignments.{a_index}: territory {assignment.territory_code!r} is unknown"
                )
