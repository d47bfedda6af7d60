"""Use cases of the identity service: register territories and residents, check eligibility."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from comuna.common.v1 import territory_pb2
from comuna.identity.v1 import events_pb2
from comuna_identity.domain.census import CensusHasher, age_on
from comuna_identity.domain.territories import COMMUNE_KINDS, check_placement
from comuna_identity.storage import repository
from comuna_identity.storage.models import Resident, Territory
from comuna_platform.auth.principal import Principal
from comuna_platform.errors import Conflict, InvalidInput, NotFound
from comuna_platform.events import stage_event

KIND_TO_PROTO = {
    "country": territory_pb2.TERRITORY_KIND_COUNTRY,
    "state": territory_pb2.TERRITORY_KIND_STATE,
    "municipality": territory_pb2.TERRITORY_KIND_MUNICIPALITY,
    "commune": territory_pb2.TERRITORY_KIND_COMMUNE,
    "communal_circuit": territory_pb2.TERRITORY_KIND_COMMUNAL_CIRCUIT,
    "communal_council": territory_pb2.TERRITORY_KIND_COMMUNAL_COUNCIL,
}


def territory_ref(t: Territory) -> territory_pb2.TerritoryRef:
    return territory_pb2.TerritoryRef(id=str(t.id), code=t.code, kind=KIND_TO_PROTO[t.kind], name=t.name)


async def create_territory(
    session: AsyncSession, principal: Principal, *, code: str, name: str, kind: str, parent_code: str | None
) -> Territory:
    parent = None
    if parent_code is not None:
        parent = await repository.territory_by_code(session, parent_code)
        if parent is None:
            raise NotFound(f"parent territory {parent_code} does not exist", code="territory_not_found")
    check_placement(
        kind=kind, code=code, parent_kind=parent.kind if parent else None, parent_code=parent.code if parent else None
    )
    principal.require_territory(code)
    territory = Territory(id=uuid.uuid4(), code=code, name=name, kind=kind, parent_id=parent.id if parent else None)
    session.add(territory)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"territory {code} already exists", code="territory_exists") from exc
    await stage_event(
        session,
        aggregate_id=str(territory.id),
        message=events_pb2.TerritoryCreated(
            territory=territory_ref(territory), parent_id=str(parent.id) if parent else ""
        ),
    )
    return territory


@dataclass(frozen=True)
class NewResident:
    national_id: str
    birth_date: date
    council_code: str


async def register_residents(
    session: AsyncSession,
    principal: Principal,
    hasher: CensusHasher,
    residents: Sequence[NewResident],
    *,
    today: date,
) -> list[uuid.UUID]:
    """Register residents all-or-nothing; each must live in a council the caller covers."""
    councils: dict[str, Territory] = {}
    rows: list[dict[str, Any]] = []
    for new in residents:
        council = councils.get(new.council_code)
        if council is None:
            found = await repository.territory_by_code(session, new.council_code)
            if found is None or found.kind != "communal_council":
                raise NotFound(f"communal council {new.council_code} does not exist", code="council_not_found")
            principal.require_territory(found.code)
            councils[new.council_code] = council = found
        if new.birth_date > today or new.birth_date.year < 1900:
            raise InvalidInput("birth date is not plausible", code="birth_date_invalid")
        assert council.parent_id is not None
        rows.append(
            {
                "id": uuid.uuid4(),
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
    for row in rows:
        await stage_event(
            session,
            aggregate_id=str(row["id"]),
            message=events_pb2.ResidentRegistered(
                resident_id=str(row["id"]), council_id=str(row["council_id"]), commune_id=str(row["commune_id"])
            ),
        )
    return [row["id"] for row in rows]


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: int
    voter_ref: str = ""


async def check_eligibility(
    session: AsyncSession,
    hasher: CensusHasher,
    *,
    consultation_id: str,
    commune_id: uuid.UUID,
    national_id: str,
    voting_day: date,
    voting_age: int,
) -> Eligibility:
    from comuna.identity.v1 import identity_pb2 as pb

    commune = await repository.territory_by_id(session, commune_id)
    if commune is None or commune.kind not in COMMUNE_KINDS:
        raise NotFound(f"commune {commune_id} does not exist", code="commune_not_found")
    resident = await repository.resident_by_hash(session, hasher.national_id_hash(national_id))
    if resident is None:
        return Eligibility(False, pb.INELIGIBILITY_REASON_NOT_REGISTERED)
    if resident.commune_id != commune_id:
        return Eligibility(False, pb.INELIGIBILITY_REASON_OTHER_COMMUNE)
    if age_on(resident.birth_date, voting_day) < voting_age:
        return Eligibility(False, pb.INELIGIBILITY_REASON_UNDER_AGE)
    return Eligibility(True, pb.INELIGIBILITY_REASON_UNSPECIFIED, hasher.voter_ref(consultation_id, str(resident.id)))
