"""Use cases of the census: register residents, check eligibility. REST and gRPC both call
these, inside the unit of work they were given. The territory register is `domain.register`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from comuna_identity.domain.census import CensusHasher, age_on
from comuna_identity.domain.events import ResidentRegistered
from comuna_identity.domain.territories import lineage_of
from comuna_identity.storage import repository
from comuna_identity.storage.models import Resident
from comuna_identity.storage.territory_history import TerritoryAt
from comuna_identity.vocabulary import COMMUNE_KINDS, IneligibilityReason, TerritoryKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Conflict, InvalidInput, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import Staged, UnitOfWork

# Who may register census records.
CENSUS_KEEPERS = (Role.REGISTRAR,)


@dataclass(frozen=True)
class NewResident:
    national_id: str
    birth_date: date
    council_code: str


async def register_residents(
    uow: UnitOfWork,
    caller: Caller,
    hasher: CensusHasher,
    residents: Sequence[NewResident],
    *,
    today: date,
) -> list[uuid.UUID]:
    """Register residents all-or-nothing; each must live in a council the caller covers."""
    session = uow.session
    councils: dict[str, TerritoryAt] = {}
    rows: list[dict[str, Any]] = []
    for new in residents:
        council = councils.get(new.council_code)
        if council is None:
            found = await repository.territory_by_code(session, new.council_code, today)
            if found is None or found.kind != TerritoryKind.COMMUNAL_COUNCIL:
                raise NotFound(f"communal council {new.council_code} does not exist", code="council_not_found")
            caller.require(CENSUS_KEEPERS, await lineage_of(session, found, today))
            councils[new.council_code] = council = found
        if new.birth_date > today or new.birth_date.year < 1900:
            raise InvalidInput("birth date is not plausible", code="birth_date_invalid")
        assert council.parent_id is not None
        rows.append(
            {
                "id": new_id(),
                "national_id_hash": hasher.national_id_hash(new.national_id),
                "birth_date": new.birth_date,
                "council_id": council.id,
                "commune_id": council.parent_id,
            }
        )
    if len({row["national_id_hash"] for row in rows}) != len(rows):
        raise Conflict("the same national id number appears twice in the request", code="resident_duplicate")
    try:
        await session.execute(insert(Resident), rows)
    except IntegrityError as exc:
        raise Conflict("a resident with this national id number is already registered", code="resident_exists") from exc
    await uow.stage_all(
        [
            Staged(ResidentRegistered(row["id"], row["council_id"], row["commune_id"]), aggregate_id=str(row["id"]))
            for row in rows
        ]
    )
    return [row["id"] for row in rows]


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: IneligibilityReason | None
    voter_ref: str = ""


async def check_eligibility(
    uow: UnitOfWork,
    hasher: CensusHasher,
    *,
    consultation_id: str,
    commune_id: uuid.UUID,
    national_id: str,
    voting_day: date,
    voting_age: int,
) -> Eligibility:
    if not consultation_id:
        raise InvalidInput("consultation_id is required", code="invalid_id", field="consultation_id")
    commune = await repository.territory_by_id(uow.session, commune_id)
    if commune is None or commune.kind not in COMMUNE_KINDS:
        raise NotFound(f"commune {commune_id} does not exist", code="commune_not_found")
    resident = await repository.resident_by_hash(uow.session, hasher.national_id_hash(national_id))
    if resident is None:
        return Eligibility(False, IneligibilityReason.NOT_REGISTERED)
    if resident.commune_id != commune_id:
        return Eligibility(False, IneligibilityReason.OTHER_COMMUNE)
    if age_on(resident.birth_date, voting_day) < voting_age:
        return Eligibility(False, IneligibilityReason.UNDER_AGE)
    return Eligibility(True, None, hasher.voter_ref(consultation_id, str(resident.id)))
