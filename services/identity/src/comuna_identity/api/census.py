"""REST transport of the census at scale: streamed import, change of residence, key rotation progress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request

from comuna_identity.api.lookups import RATE_LIMITED, counted_lookup
from comuna_identity.api.routes import census_of
from comuna_identity.api.schemas import ResidentMoveIn, ResidentMoveOut
from comuna_identity.domain import census_rotation, registry, territories
from comuna_identity.domain.census_import import Preparer, import_residents
from comuna_identity.domain.census_prepare import COLUMNS, REQUIRED_COLUMNS
from comuna_identity.domain.residence import move_resident
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import require_assignment
from comuna_platform.auth.roles import Role
from comuna_platform.bulk import format_of, read_rows
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.rate_limit import DocumentLookupQuota

router = APIRouter(prefix="/v1", tags=["census"])

CensusKeeper = Annotated[Caller, require_assignment(*registry.CENSUS_KEEPERS)]
RotationWatcher = Annotated[Caller, require_assignment(Role.OPERATOR, Role.REGISTRAR)]


def preparer_of(request: Request) -> Preparer:
    preparer: Preparer = request.app.state.census_preparer
    return preparer


@router.post(
    "/residents:import",
    summary="Import residents from a streamed CSV or JSON file (upsert by document, all or nothing)",
    description="Body `text/csv` with the header `document_type,document_number,birth_date,council_code,"
    "valid_from[,status]`, or `application/json` (an array of such objects, or JSON Lines). A known person "
    "in another council moves from `valid_from`. Any bad line: 422 "
    "`import_invalid` listing every bad line by number, nothing written. The caller must cover every council "
    "of the file (403 `forbidden_territory` naming one it does not), and every council the file moves people "
    "out of (one 403 `forbidden_territory` for the whole file, naming neither the line nor the council). "
    "A lookup by document: one token of the caller's `document_lookups` limit per call, whatever the file's size.",
    responses={
        403: {
            "description": "`forbidden_territory`: a council of the file is outside the caller's scope (named), or "
            "the file moves someone out of a council outside it (named neither)"
        },
        **RATE_LIMITED,
    },
    openapi_extra={
        "requestBody": {
            "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "array"}}},
            "required": True,
        }
    },
)
async def import_census(
    caller: CensusKeeper, quota: DocumentLookupQuota, uow: UnitOfWorkDep, request: Request
) -> dict[str, Any]:
    # The token is taken by the dependency, before a byte of the body is read: a refused file (a
    # move out of scope) tells whether someone is in the census, like a refused registration.
    body_format = format_of(content_type=request.headers.get("content-type", ""))

    today = datetime.now(UTC).date()

    async def authorise(council_codes: list[str]) -> None:
        await territories.require_over_all(uow.session, caller, registry.CENSUS_KEEPERS, council_codes, today)

    async def authorise_moves_from(council_codes: list[str]) -> None:
        if not await territories.covers_all(uow.session, caller, registry.CENSUS_KEEPERS, council_codes, today):
            raise registry.MovesOutOfScope()

    # A refused move out of scope is a failed lookup of a person, as for a registration or a move
    # (the file's own councils out of scope are not: they say nothing of anyone).
    with counted_lookup(quota):
        report = await import_residents(
            uow.session,
            census_of(request),
            preparer_of(request),
            read_rows(request.stream(), body_format, columns=COLUMNS, required=REQUIRED_COLUMNS),
            actor=caller.subject,
            today=datetime.now(UTC).date(),
            authorise=authorise,
            authorise_moves_from=authorise_moves_from,
        )
    return report.as_json()


@router.post(
    "/residents:move",
    response_model=ResidentMoveOut,
    summary="Move a resident to another council from a date (history kept)",
    description="A lookup by document: one token of the caller's `document_lookups` limit. The caller covers "
    "both the council of the request and the one the resident lives in.",
    responses={
        403: {
            "description": "`forbidden_territory`: the council of the request is outside the caller's scope, or "
            "the resident lives in a council outside it (the refusal names the council of the request, not "
            "the resident's)"
        },
        404: {"description": "`council_not_found`, or `resident_not_found`: the document is not in the census"},
        **RATE_LIMITED,
    },
)
async def move(
    body: ResidentMoveIn, caller: CensusKeeper, quota: DocumentLookupQuota, uow: UnitOfWorkDep, request: Request
) -> ResidentMoveOut:
    with counted_lookup(quota, "resident_not_found"):
        moved = await move_resident(
            uow,
            caller,
            census_of(request),
            national_id=body.national_id,
            document_type=body.document_type,
            council_code=body.council_code,
            valid_from=body.valid_from,
            today=datetime.now(UTC).date(),
        )
    return ResidentMoveOut(id=moved.resident_id, moved=moved.moved)


@router.get("/census/rotation", summary="Progress of the census key rotation (residents per key id)")
async def rotation(caller: RotationWatcher, request: Request) -> dict[str, object]:
    del caller
    progress = await census_rotation.progress(request.app.state.runtime.db, census_of(request))
    return progress.as_json()
