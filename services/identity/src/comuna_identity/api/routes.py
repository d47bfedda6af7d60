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
from comuna_identity.domain.census import CensusHasher
from comuna_identity.storage import repository
from comuna_identity.storage.models import Territory
from comuna_platform.auth.fastapi import require_roles
from comuna_platform.auth.principal import Principal
from comuna_platform.errors import NotFound
from comuna_platform.http.deps import RuntimeDep
from comuna_platform.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["identity"])

Registrar = Annotated[Principal, require_roles("registrar", "operator")]


def hasher_of(request: Request) -> CensusHasher:
    hasher: CensusHasher = request.app.state.census_hasher
    return hasher


def _out(t: Territory) -> TerritoryOut:
    return TerritoryOut(id=t.id, code=t.code, name=t.name, kind=t.kind, parent_id=t.parent_id)


@router.post(
    "/territories",
    status_code=status.HTTP_201_CREATED,
    response_model=TerritoryOut,
    summary="Register a territory (state, municipality, commune, circuit or council)",
)
async def create_territory(body: TerritoryIn, principal: Registrar, runtime: RuntimeDep) -> TerritoryOut:
    async with runtime.db.transaction() as session:
        territory = await registry.create_territory(
            session, principal, code=body.code, name=body.name, kind=body.kind, parent_code=body.parent_code
        )
        return _out(territory)


@router.get("/territories", response_model=TerritoryPage, summary="List the children of a territory (public)")
async def list_territories(
    runtime: RuntimeDep,
    parent_code: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[str, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TerritoryPage:
    async with runtime.db.transaction() as session:
        parent_id = None
        if parent_code:
            parent = await repository.territory_by_code(session, parent_code)
            if parent is None:
                raise NotFound(f"territory {parent_code} does not exist", code="territory_not_found")
            parent_id = parent.id
        rows = await repository.children_of(session, parent_id, after_code=after, limit=limit)
    items = [_out(t) for t in rows]
    return TerritoryPage(items=items, next_after=items[-1].code if len(items) == limit else None)


@router.get("/territories/{code}", response_model=TerritoryDetail, summary="A territory and its ancestors (public)")
async def get_territory(code: str, runtime: RuntimeDep) -> TerritoryDetail:
    async with runtime.db.transaction() as session:
        territory = await repository.territory_by_code(session, code)
        if territory is None:
            raise NotFound(f"territory {code} does not exist", code="territory_not_found")
        ancestors = await repository.ancestors_of(session, territory)
    return TerritoryDetail(**_out(territory).model_dump(), ancestors=[_out(a) for a in ancestors])


@router.post(
    "/residents",
    status_code=status.HTTP_201_CREATED,
    response_model=ResidentOut,
    summary="Register a resident in the census",
)
async def register_resident(
    body: ResidentIn, principal: Registrar, runtime: RuntimeDep, request: Request
) -> ResidentOut:
    ids = await _register(runtime, principal, hasher_of(request), [body])
    return ResidentOut(id=ids[0])


@router.post(
    "/residents:batch",
    status_code=status.HTTP_201_CREATED,
    response_model=ResidentBatchOut,
    summary="Register up to 1,000 residents at once, all or nothing",
)
async def register_residents(
    body: ResidentBatchIn, principal: Registrar, runtime: RuntimeDep, request: Request
) -> ResidentBatchOut:
    return ResidentBatchOut(ids=await _register(runtime, principal, hasher_of(request), body.residents))


async def _register(
    runtime: Runtime, principal: Principal, hasher: CensusHasher, residents: list[ResidentIn]
) -> list[uuid.UUID]:
    new = [registry.NewResident(r.national_id, r.birth_date, r.council_code) for r in residents]
    async with runtime.db.transaction() as session:
        return await registry.register_residents(session, principal, hasher, new, today=datetime.now(UTC).date())
