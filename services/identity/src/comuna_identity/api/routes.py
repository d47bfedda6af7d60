"""REST transport of the identity service: territory register and census."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status

from comuna_identity.api.lookups import RATE_LIMITED, counted_lookup
from comuna_identity.api.schemas import (
    ResidentBatchIn,
    ResidentBatchOut,
    ResidentIn,
    ResidentOut,
    TerritoryChangeIn,
    TerritoryChangeOut,
    TerritoryDetail,
    TerritoryIn,
    TerritoryOut,
    TerritoryPage,
    TerritoryVersionOut,
)
from comuna_identity.domain import register, registry
from comuna_identity.domain.census import Census
from comuna_identity.storage.territory_history import TerritoryAt
from comuna_identity.vocabulary import TerritoryKind, TerritoryStatus
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import require_assignment
from comuna_platform.errors import NotFound
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.paging import decode_page_token, encode_page_token
from comuna_platform.rate_limit import DocumentLookupQuota, Quota
from comuna_platform.uow import UnitOfWork

router = APIRouter(prefix="/v1", tags=["identity"])

TerritoryKeeper = Annotated[Caller, require_assignment(*register.TERRITORY_KEEPERS)]
AsOf = Annotated[
    date | None, Query(description="Read the register as it stood on this day (YYYY-MM-DD); default today (UTC)")
]
CensusKeeper = Annotated[Caller, require_assignment(*registry.CENSUS_KEEPERS)]


def census_of(request: Request) -> Census:
    census: Census = request.app.state.census
    return census


def _out(t: TerritoryAt) -> TerritoryOut:
    return TerritoryOut(
        id=t.id,
        code=t.code,
        name=t.name,
        kind=TerritoryKind(t.kind),
        parent_id=t.parent_id,
        status=TerritoryStatus(t.status),
        valid_from=t.valid_from,
        valid_until=t.valid_until,
    )


def _day(as_of: date | None) -> date:
    return as_of or datetime.now(UTC).date()


@router.post(
    "/territories",
    status_code=status.HTTP_201_CREATED,
    response_model=TerritoryOut,
    summary="Register a territory (state, municipality, parish, commune, circuit or council)",
)
async def create_territory(body: TerritoryIn, caller: TerritoryKeeper, uow: UnitOfWorkDep) -> TerritoryOut:
    territory = await register.create_territory(
        uow,
        caller,
        code=body.code,
        name=body.name,
        kind=body.kind,
        parent_code=body.parent_code,
        valid_from=body.valid_from,
    )
    return _out(territory)


@router.post(
    "/territories/{code}:change",
    response_model=TerritoryChangeOut,
    summary="Change a territory from a day on: move, rename, promote (kind) or dissolve; history is kept",
)
async def change_territory(
    code: Annotated[str, Path(max_length=64)], body: TerritoryChangeIn, caller: TerritoryKeeper, uow: UnitOfWorkDep
) -> TerritoryChangeOut:
    change = register.Change(
        valid_from=body.valid_from, name=body.name, kind=body.kind, parent_code=body.parent_code, status=body.status
    )
    result = await register.change_territory(uow, caller, code, change, actor=caller.subject)
    return TerritoryChangeOut(**_out(result.territory).model_dump(), changed=result.changed)


@router.get("/territories", response_model=TerritoryPage, summary="List the children of a territory (public)")
async def list_territories(
    uow: UnitOfWorkDep,
    as_of: AsOf = None,
    parent_code: Annotated[str | None, Query(max_length=64)] = None,
    page_token: Annotated[str, Query(max_length=512, description="`next_page_token` of the previous page")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TerritoryPage:
    after = decode_page_token(page_token, [str])
    page = await register.list_children(
        uow, parent_code=parent_code, day=_day(as_of), after_code=after[0] if after else "", limit=limit
    )
    return TerritoryPage(
        items=[_out(t) for t in page.items],
        next_page_token=encode_page_token(page.items[-1].code) if page.more else None,
    )


@router.get(
    "/territories/{code}",
    response_model=TerritoryDetail,
    summary="A territory as of a day, its ancestors then, and its whole history (public)",
)
async def get_territory(
    code: Annotated[str, Path(max_length=64)], uow: UnitOfWorkDep, as_of: AsOf = None
) -> TerritoryDetail:
    try:
        found = await register.territory_with_ancestors(uow, code=code, day=_day(as_of), with_history=True)
    except NotFound as exc:
        raise register.territory_not_found(code) from exc
    history = [
        TerritoryVersionOut(
            valid_from=v.valid_from,
            valid_until=v.valid_until,
            name=v.name,
            kind=TerritoryKind(v.kind),
            parent_id=v.parent_id,
            status=TerritoryStatus(v.status),
        )
        for v in found.history
    ]
    return TerritoryDetail(
        **_out(found.territory).model_dump(), ancestors=[_out(a) for a in found.ancestors], history=history
    )


# Registering tells whether a document is in the census (201 or a refusal): a lookup by
# document, under the same per-caller limit as enrolment and linking.
REGISTRATION_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {
        "description": "`forbidden_territory`: the council is outside the caller's scope, or someone in the "
        "request is already registered in a council outside it (not said which)"
    },
    409: {"description": "`resident_exists`: already registered, in a council the caller covers"},
    **RATE_LIMITED,
}


@router.post(
    "/residents",
    status_code=status.HTTP_201_CREATED,
    response_model=ResidentOut,
    summary="Register a resident in the census",
    responses=REGISTRATION_RESPONSES,
)
async def register_resident(
    body: ResidentIn, caller: CensusKeeper, quota: DocumentLookupQuota, uow: UnitOfWorkDep, request: Request
) -> ResidentOut:
    ids = await _register(uow, caller, quota, census_of(request), [body])
    return ResidentOut(id=ids[0])


@router.post(
    "/residents:batch",
    status_code=status.HTTP_201_CREATED,
    response_model=ResidentBatchOut,
    summary="Register up to 1,000 residents at once, all or nothing",
    responses=REGISTRATION_RESPONSES,
)
async def register_residents(
    body: ResidentBatchIn, caller: CensusKeeper, quota: DocumentLookupQuota, uow: UnitOfWorkDep, request: Request
) -> ResidentBatchOut:
    # One token per call, like a single registration: a refused batch answers one question too.
    return ResidentBatchOut(ids=await _register(uow, caller, quota, census_of(request), body.residents))


async def _register(
    uow: UnitOfWork, caller: Caller, quota: Quota, census: Census, residents: list[ResidentIn]
) -> list[uuid.UUID]:
    new = [
        registry.NewResident(r.national_id, r.birth_date, r.council_code, r.document_type, r.valid_from)
        for r in residents
    ]
    with counted_lookup(quota, "resident_exists"):
        return await registry.register_residents(uow, caller, census, new, today=datetime.now(UTC).date())
