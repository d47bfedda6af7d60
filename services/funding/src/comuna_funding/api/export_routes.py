"""REST transport of the open fund-flow exports (docs/ledger.md, "Open data"): every movement of
the allocations in scope as Open Contracting transactions, in JSON or CSV, and their totals.
Public, like every read of funding, and cacheable for a minute.

An export streams from one read-only snapshot held for its whole download; a few per process
at a time, so that slow downloads cannot take the connections the ledger's writes need.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from comuna_funding.domain import exports
from comuna_funding.domain.exports import ScopeFilter
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep
from comuna_platform.http.streamed import MAX_DOWNLOADS, download_slots
from comuna_platform.runtime import Runtime

router = APIRouter(prefix="/v1/exports", tags=["open data"])

CACHE = "public, max-age=60"


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


Funder = Annotated[
    str | None, Query(max_length=32, description="A funder's name (`allocations.funding_source`), e.g. `national`.")
]
CommuneId = Annotated[uuid.UUID | None, Query(description="A commune's id: its projects' allocations.")]
AllocationId = Annotated[uuid.UUID | None, Query(description="One allocation (a project and its funder).")]

_SCOPE_PARAMETERS = (
    "Filters combine (all must hold); none: every allocation. An unknown funder, commune or allocation "
    "gives an empty export; a malformed one is 422."
)


@router.get(
    "/transactions",
    response_class=StreamingResponse,
    summary="Every movement of the allocations in scope as OCDS implementation transactions, with committed, "
    "disbursed, pending and returned totals (JSON), or one CSV row each (streamed, public)",
    description=_SCOPE_PARAMETERS
    + " JSON: `{filters, totals: [{currency, committed, disbursed, pending, returned}], transactions: [{id, "
    "source, date, value: {amount, amount_minor, currency}, payer: {id, name}, payee: {id, name}, kind, code, "
    "reference, pending_id, allocation_id, funder, commune_id}]}`. CSV: a header, then one row per "
    "transaction; the totals are at `/v1/exports/totals`. 503 `exports_busy` (with Retry-After) while "
    f"{MAX_DOWNLOADS} exports are streaming from this replica.",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def export_transactions(
    *,
    request: Request,
    runtime: RuntimeDep,
    funder: Funder = None,
    commune_id: CommuneId = None,
    allocation_id: AllocationId = None,
    file_format: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.JSON,
) -> StreamingResponse:
    # Everything that can be refused is refused here, before the first byte is sent.
    scope = exports.scope_of(funder, commune_id, allocation_id)
    slots = download_slots(request)
    return StreamingResponse(
        _stream(runtime, slots, scope, file_format),
        media_type="text/csv; charset=utf-8" if file_format is ExportFormat.CSV else "application/json",
        headers={
            "Cache-Control": CACHE,
            "Content-Disposition": f'attachment; filename="transactions.{file_format.value}"',
        },
    )


async def _stream(
    runtime: Runtime, slots: asyncio.Semaphore, scope: ScopeFilter, file_format: ExportFormat
) -> AsyncIterator[bytes]:
    # Its own transaction: the stream outlives the request's unit of work.
    async with slots, runtime.db.transaction() as session:
        document = (
            exports.csv_document(session, scope)
            if file_format is ExportFormat.CSV
            else exports.json_document(session, scope)
        )
        async for chunk in document:
            yield chunk.encode()


@router.get(
    "/totals",
    response_class=Response,
    summary="Committed, disbursed, pending and returned totals per currency of the allocations in scope (public)",
    description=_SCOPE_PARAMETERS
    + " `{filters, totals: [{currency, committed, disbursed, pending, returned}]}`, each a "
    '`{amount, amount_minor, currency}` (docs/ledger.md, "Open data").',
    responses={200: {"content": {"application/json": {}}}},
)
async def export_totals(
    uow: UnitOfWorkDep, funder: Funder = None, commune_id: CommuneId = None, allocation_id: AllocationId = None
) -> Response:
    scope = exports.scope_of(funder, commune_id, allocation_id)
    document = await exports.totals_document(uow.session, scope)
    return Response(document, media_type="application/json", headers={"Cache-Control": CACHE})
