"""A change of residence of one resident, effective from a date; the history is kept.

Moving someone is a lookup by document (the answer says whether they are in the census), so the
transport puts it under the document-lookup rate limit. The caller covers both councils, and a
refusal never says where the person lives: a resident living outside the caller's scope gets
the scope refusal of the request (403 `forbidden_territory` naming the council of the request,
`registry.ResidentOutOfScope`), never one naming their own council."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from comuna_identity.domain import audit
from comuna_identity.domain.census import Census
from comuna_identity.domain.registry import CENSUS_KEEPERS, ResidentOutOfScope, resident_audit_state
from comuna_identity.domain.territories import lineage_of
from comuna_identity.storage import census as census_storage
from comuna_identity.storage import repository
from comuna_identity.storage.models import ResidentResidence
from comuna_identity.vocabulary import TerritoryKind
from comuna_platform.auth.access import Caller
from comuna_platform.documents import normalise_document
from comuna_platform.errors import InvalidInput, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork


@dataclass(frozen=True)
class Moved:
    resident_id: uuid.UUID
    # False: the resident already lived in that council (nothing changed).
    moved: bool


async def move_resident(
    uow: UnitOfWork,
    caller: Caller,
    census: Census,
    *,
    national_id: str,
    document_type: str | None,
    council_code: str,
    valid_from: date,
    today: date,
) -> Moved:
    """Move the resident to `council_code` from `valid_from`. The caller covers both councils:
    a registrar cannot take residents away from a council outside their reach (and does not learn
    which council that is: `ResidentOutOfScope` names `council_code`)."""
    session = uow.session
    document = normalise_document(national_id, document_type)
    generations = await census.generations(session, writing=True)
    council = await repository.territory_by_code(session, council_code)
    if council is None or council.kind != TerritoryKind.COMMUNAL_COUNCIL:
        raise NotFound(f"communal council {council_code} does not exist", code="council_not_found")
    caller.require(CENSUS_KEEPERS, await lineage_of(session, council, today))
    resident = await census_storage.resident_by_layers(session, census.layers(document, generations))
    if resident is None:
        raise NotFound("no resident with this document is registered", code="resident_not_found")
    current = await census_storage.latest_residence(session, resident.id, for_update=True)
    old_council = None if current is None else await repository.territory_by_id(session, current.council_id)
    if old_council is not None and not caller.allows(CENSUS_KEEPERS, await lineage_of(session, old_council, today)):
        raise ResidentOutOfScope(council.code)
    if current is not None and current.council_id == council.id and current.valid_until is None:
        return Moved(resident.id, False)
    if valid_from > today or valid_from < resident.birth_date:
        raise InvalidInput("valid_from must be between the birth date and today", code="valid_from_invalid")
    if current is not None and valid_from <= current.valid_from:
        raise InvalidInput("a move must start after the current residence began", code="valid_from_before_residence")

    def state(council_code: str, since: date) -> dict[str, object]:
        return resident_audit_state(
            key_id=resident.document_key_id,
            birth_date=resident.birth_date,
            status=resident.status,
            status_since=resident.status_since,
            council_code=council_code,
            since=since,
        )

    before = None if current is None or old_council is None else state(old_council.code, current.valid_from)
    if current is not None and current.valid_until is None:
        current.valid_until = valid_from
    session.add(ResidentResidence(id=new_id(), resident_id=resident.id, council_id=council.id, valid_from=valid_from))
    await session.flush()
    await audit.append(
        session,
        [
            audit.AuditEntry(
                caller.subject, "resident.moved", "resident", str(resident.id), before, state(council.code, valid_from)
            )
        ],
    )
    return Moved(resident.id, True)
