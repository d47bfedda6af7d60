"""Use cases of the identity service: register territories and residents, read the register,
check eligibility. REST and gRPC both call these, inside the unit of work they were given."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from comuna_identity.domain import audit
from comuna_identity.domain.census import CensusHasher, age_on
from comuna_identity.domain.events import ResidentRegistered, TerritoryCreated
from comuna_identity.domain.territories import check_placement
from comuna_identity.storage import repository
from comuna_identity.storage.models import Resident, Territory
from comuna_identity.vocabulary import COMMUNE_KINDS, IneligibilityReason, TerritoryKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Conflict, InvalidInput, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import Staged, UnitOfWork


def territory_not_found(code: str) -> NotFound:
    return NotFound(f"territory {code} does not exist", code="territory_not_found")


# Who may register territories and census records: registrars, and operators for territories.
TERRITORY_KEEPERS = (Role.REGISTRAR, Role.OPERATOR)
CENSUS_KEEPERS = (Role.REGISTRAR,)
# The actor of the trusted seed (`keycloak sync`) in the audit log.
BOOTSTRAP = "bootstrap"


async def create_territory(
    uow: UnitOfWork, caller: Caller, *, code: str, name: str, kind: TerritoryKind, parent_code: str | None
) -> Territory:
    """Register a territory under a parent the caller covers (the country root: an operator)."""
    parent = await _parent(uow, parent_code)
    check_placement(
        kind=kind, code=code, parent_kind=parent.kind if parent else None, parent_code=parent.code if parent else None
    )
    if parent is None:
        caller.require_role(Role.OPERATOR)
    else:
        caller.require(TERRITORY_KEEPERS, parent.code)
    return await insert_territory(uow, code=code, name=name, kind=kind, parent=parent, actor=caller.subject)


async def ensure_territory(uow: UnitOfWork, *, code: str, name: str, kind: str, parent_code: str | None) -> bool:
    """Seed a territory unless one with `code` exists (then nothing changes); True if it created it."""
    if await repository.territory_by_code(uow.session, code) is not None:
        return False
    parent = await _parent(uow, parent_code)
    check_placement(
        kind=kind, code=code, parent_kind=parent.kind if parent else None, parent_code=parent.code if parent else None
    )
    await insert_territory(uow, code=code, name=name, kind=TerritoryKind(kind), parent=parent, actor=BOOTSTRAP)
    return True


async def _parent(uow: UnitOfWork, parent_code: str | None) -> Territory | None:
    if parent_code is None:
        return None
    parent = await repository.territory_by_code(uow.session, parent_code)
    if parent is None:
        raise NotFound(f"parent territory {parent_code} does not exist", code="territory_not_found")
    return parent


async def insert_territory(
    uow: UnitOfWork, *, code: str, name: str, kind: TerritoryKind, parent: Territory | None, actor: str
) -> Territory:
    session = uow.session
    territory = Territory(id=new_id(), code=code, name=name, kind=kind, parent_id=parent.id if parent else None)
    session.add(territory)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"territory {code} already exists", code="territory_exists") from exc
    state = {"code": code, "name": name, "kind": kind, "parent_id": territory.parent_id}
    entry = audit.AuditEntry(actor, "territory.created", "territory", str(territory.id), None, state)
    await audit.append(session, [entry])
    await uow.stage(TerritoryCreated(territory, parent.id if parent else None), aggregate_id=str(territory.id))
    return territory


@dataclass(frozen=True)
class TerritoryPage:
    items: Sequence[Territory]
    more: bool


async def list_children(uow: UnitOfWork, *, parent_code: str | None, after_code: str, limit: int) -> TerritoryPage:
    """The children of `parent_code` (the roots when None), in code order."""
    parent_id = None
    if parent_code:
        parent = await repository.territory_by_code(uow.session, parent_code)
        if parent is None:
            raise territory_not_found(parent_code)
        parent_id = parent.id
    rows = await repository.children_of(uow.session, parent_id, after_code=after_code, limit=limit + 1)
    return TerritoryPage(rows[:limit], len(rows) > limit)


async def list_communes(uow: UnitOfWork, *, under_code: str, after_code: str, limit: int) -> TerritoryPage:
    """Communes and communal circuits under `under_code` (everywhere when empty), in code order."""
    rows = await repository.communes_under(uow.session, under_code, after_code=after_code, limit=limit + 1)
    return TerritoryPage(rows[:limit], len(rows) > limit)


@dataclass(frozen=True)
class TerritoryWithAncestors:
    territory: Territory
    # From the root down to the parent.
    ancestors: list[Territory]


async def territory_with_ancestors(
    uow: UnitOfWork, *, code: str | None = None, territory_id: uuid.UUID | None = None
) -> TerritoryWithAncestors:
    if territory_id is not None:
        territory = await repository.territory_by_id(uow.session, territory_id)
    else:
        territory = await repository.territory_by_code(uow.session, code or "")
    if territory is None:
        raise NotFound("territory does not exist", code="territory_not_found")
    return TerritoryWithAncestors(territory, await repository.ancestors_of(uow.session, territory))


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
    councils: dict[str, Territory] = {}
    rows: list[dict[str, Any]] = []
    for new in residents:
        council = councils.get(new.council_code)
        if council is None:
            found = await repository.territory_by_code(session, new.council_code)
            if found is None or found.kind != TerritoryKind.COMMUNAL_COUNCIL:
                raise NotFound(f"communal council {new.council_code} does not exist", code="council_not_found")
            caller.require(CENSUS_KEEPERS, found.code)
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
    await audit.append(
        session,
        [
            audit.AuditEntry(
                caller.subject,
                "resident.registered",
                "resident",
                str(row["id"]),
                None,
                {"council_id": row["council_id"], "commune_id": row["commune_id"], "birth_date": row["birth_date"]},
            )
            for row in rows
        ],
    )
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
