"""Use cases of the census: register residents. REST and gRPC both call
these, inside the unit of work they were given. The territory register is `domain.register`.

Registering someone already in the census is refused, and the refusal must not tell a registrar
more than their scope allows: "already registered" (409 `resident_exists`) only when the person
lives in a council the registrar covers; otherwise the scope refusal any out-of-scope request
gets (403 `forbidden_territory`, naming the council of the request, never the person's own).
The transport puts these routes under the document-lookup rate limit, which bounds probing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.domain import audit
from comuna_identity.domain.census import Census
from comuna_identity.domain.events import ResidentRegistered
from comuna_identity.domain.territories import lineage_of
from comuna_identity.storage import census as census_storage
from comuna_identity.storage import repository
from comuna_identity.storage.models import Resident, ResidentResidence
from comuna_identity.storage.territory_history import TerritoryAt
from comuna_identity.vocabulary import ResidentStatus, TerritoryKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.errors import PermissionDeniedError
from comuna_platform.auth.roles import Role
from comuna_platform.documents import normalise_document
from comuna_platform.errors import Conflict, InvalidInput, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import Staged, UnitOfWork

# Who may register census records.
CENSUS_KEEPERS = (Role.REGISTRAR,)
# The actor of the trusted seed (`keycloak sync`) in the audit log.
BOOTSTRAP = "bootstrap"


class ResidentOutOfScope(PermissionDeniedError):
    """A person in the request is already in the census, in a council the caller does not
    cover. Rendered exactly as any scope refusal of the request; its own class only so the
    transport can count the failed lookup."""

    def __init__(self, council_code: str) -> None:
        super().__init__("forbidden_territory", f"not allowed to act in territory {council_code}")


class MovesOutOfScope(PermissionDeniedError):
    """A census import moves someone out of a council the caller does not cover. One refusal for
    the whole file, naming neither the line nor the council: either would say where someone lives."""

    def __init__(self) -> None:
        detail = "the file moves residents out of councils outside the caller's scope (not said which)"
        super().__init__("forbidden_territory", detail)


@dataclass(frozen=True)
class NewResident:
    national_id: str
    birth_date: date
    council_code: str
    document_type: str | None = None
    # When they started living in the council; default: the day of registration.
    valid_from: date | None = None


def resident_audit_state(
    *, key_id: int, birth_date: date, status: str, status_since: date, council_code: str, since: date
) -> dict[str, Any]:
    """A census record as the audit log sees it: never the document, nor its hash."""
    return {
        "document_key_id": key_id,
        "birth_date": birth_date.isoformat(),
        "status": status,
        "status_since": status_since.isoformat(),
        "council_code": council_code,
        "resident_since": since.isoformat(),
    }


async def register_residents(
    uow: UnitOfWork,
    caller: Caller,
    census: Census,
    residents: Sequence[NewResident],
    *,
    today: date,
) -> list[uuid.UUID]:
    """Register new residents all-or-nothing; each must live in a council the caller covers."""
    session = uow.session
    generations = await census.generations(session, writing=True)
    councils: dict[str, TerritoryAt] = {}
    rows: list[dict[str, Any]] = []
    residences: list[dict[str, Any]] = []
    entries: list[audit.AuditEntry] = []
    staged: list[Staged] = []
    every_layer: list[tuple[int, bytes]] = []
    # Every hash layer of the request -> the council code its entry asked for.
    requested_in: dict[tuple[int, bytes], str] = {}
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
        since = new.valid_from or today
        if since < new.birth_date or since > today:
            raise InvalidInput("valid_from must be between the birth date and today", code="valid_from_invalid")
        document = normalise_document(new.national_id, new.document_type)
        layers = census.layers(document, generations)
        every_layer.extend(layers)
        requested_in.update(dict.fromkeys(layers, council.code))
        key_id, digest = layers[-1]
        resident_id = new_id()
        assert council.parent_id is not None
        rows.append(
            {
                "id": resident_id,
                "document_key_id": key_id,
                "document_hash": digest,
                "roll_base": census.roll_base(document),
                "birth_date": new.birth_date,
                "status": ResidentStatus.ACTIVE,
                "status_since": since,
            }
        )
        residences.append({"id": new_id(), "resident_id": resident_id, "council_id": council.id, "valid_from": since})
        after = resident_audit_state(
            key_id=key_id,
            birth_date=new.birth_date,
            status=ResidentStatus.ACTIVE,
            status_since=since,
            council_code=council.code,
            since=since,
        )
        entries.append(
            audit.AuditEntry(caller.subject, "resident.registered", "resident", str(resident_id), None, after)
        )
        staged.append(
            Staged(ResidentRegistered(resident_id, council.id, council.parent_id), aggregate_id=str(resident_id))
        )
    if len({row["document_hash"] for row in rows}) != len(rows):
        raise Conflict("the same document appears twice in the request", code="resident_duplicate")
    await _refuse_registered(session, caller, requested_in, today)
    try:
        async with session.begin_nested():
            await session.execute(insert(Resident), rows)
            await session.execute(insert(ResidentResidence), residences)
    except IntegrityError as exc:  # a concurrent registration of the same person won the race
        # Its row is committed (READ COMMITTED sees it), so the answer is scoped as above.
        await _refuse_registered(session, caller, requested_in, today)
        raise Conflict("a resident with this document is already registered", code="resident_exists") from exc
    await audit.append(session, entries)
    await uow.stage_all(staged)
    return [row["id"] for row in rows]


async def _refuse_registered(
    session: AsyncSession, caller: Caller, requested_in: dict[tuple[int, bytes], str], today: date
) -> None:
    """Refuse when someone of the request is in the census already: 409 when the caller covers
    where every such person lives (today, else their latest council), else `ResidentOutOfScope`."""
    found = await census_storage.residents_with_layers(session, list(requested_in))
    if not found:
        return
    for resident_id, key_id, digest in found:
        council = await census_storage.council_of_resident(session, resident_id, today)
        if council is None or not caller.allows(CENSUS_KEEPERS, await lineage_of(session, council, today)):
            raise ResidentOutOfScope(requested_in[(key_id, digest)])
    raise Conflict("a resident with this document is already registered", code="resident_exists")
