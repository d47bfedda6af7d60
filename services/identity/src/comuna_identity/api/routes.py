"""REST transport of the identity service: territory register and census."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from comuna_identity.api.schemas import (
    ResidentBatchIn,
    ResidentBatchOut,
    ResidentIn,
    ResidentOut,
    TerritoryDetail,
    TerritoryIn,
    TerritoryOut,
    TerritoryPage,
)
from comuna_identity.domain import registry
from comuna_identity.domain.census import Census
from comuna_identity.storage.models import Territory
from comuna_identity.vocabulary import TerritoryKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import require_assignment
from comuna_platform.errors import NotFound
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.paging import decode_page_token, encode_page_token
from comuna_platform.uow import UnitOfWork

router = APIRouter(prefix="/v1", tags=["identity"])

TerritoryKeeper = Annotated[Caller, require_assignment(*registry.TERRITORY_KEEPERS)]
CensusKeeper = Annotated[Caller, require_assignment(*registry.CENSUS_KEEPERS)]


def census_of(request: Request) -> Census:
    census: Census = request.app.state.census
    return census


def _out(t: Territory) -> TerritoryOut:
    return TerritoryOut(id=t.id, code=t.code, name=t.name, kind=TerritoryKind(t.kind), parent_id=t.parent_id)


@router.post(
    "/territories",
    status_code=status.HTTP_201_CREATED,
    response_model=TerritoryOut,
    summary="Register a territory (state, municipality, commune, circuit or council)",
)
async def create_territory(body: TerritoryIn, caller: TerritoryKeeper, uow: UnitOfWorkDep) -> TerritoryOut:
    territory = await registry.create_territory(
        uow, caller, code=body.code, name=body.name, kind=body.kind, parent_code=body.parent_code
    )
    return _out(territory)


@router.get("/territories", response_model=TerritoryPage, summary="List the children of a territory (public)")
async def list_territories(
    uow: UnitOfWorkDep,
    parent_code: Annotated[str | None, Query(max_length=64)] = None,
    page_token: Annotated[str, Query(max_length=512, description="`next_page_token` of the previous page")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TerritoryPage:
    after = decode_page_token(page_token, [str])
    page = await registry.list_children(uow, parent_code=parent_code, after_code=after[0] if after else "", limit=limit)
    return TerritoryPage(
        items=[_out(t) for t in page.items],
        next_page_token=encode_page_token(page.items[-1].code) if page.more else None,
    )


@router.get("/territories/{code}", response_model=TerritoryDetail, summary="A territory and its ancestors (public)")
async def get_territory(code: str, uow: UnitOfWorkDep) -> TerritoryDetail:
    try:
        found = await registry.territory_with_ancestors(uow, code=code)
    except NotFound as exc:
        raise registry.territory_not_found(code) from exc
    return TerritoryDetail(**_out(found.territory).model_dump(), ancestors=[_out(a) for a in found.ancestors])


@router.post(
    "/residents",
    status_code=status.HTTP_201_CREATED,
    response_model=ResidentOut,
    summary="Register a resident in the census",
)
async def register_resident(
    body: ResidentIn, caller: CensusKeeper, uow: UnitOfWorkDep, request: Request
) -> ResidentOut:
    ids = await _register(uow, caller, census_of(request), [body])
    return ResidentOut(id=ids[0])


@router.post(
    "/residents:batch",
    status_code=status.HTTP_201_CREATED,
    response_model=ResidentBatchOut,
    summary="Register up to 1,000 residents at once, all or nothing",
)
async def register_residents(
    body: ResidentBatchIn, caller: CensusKeeper, uow: UnitOfWorkDep, request: Request
) -> ResidentBatchOut:
    return ResidentBatchOut(ids=await _register(uow, caller, census_of(request), body.residents))


async def _register(uow: UnitOfWork, caller: Caller, census: Census, residents: list[ResidentIn]) -> list[uuid.UUID]:
    new = [
        registry.NewResident(r.national_id, r.birth_date, r.council_code, r.document_type, r.valid_from)
        for r in residents
    ]
    return await registry.register_residents(uow, caller, census, new, today=datetime.now(UTC).date())
