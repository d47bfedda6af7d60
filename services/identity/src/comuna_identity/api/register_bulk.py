"""REST transport of the register's bulk paths: import a whole file (streamed), export as of a day."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from comuna_identity.domain import register_import
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import require_assignment
from comuna_platform.auth.roles import Role
from comuna_platform.bulk import BulkFormat, format_of, read_rows
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep
from comuna_platform.http.streamed import capped

router = APIRouter(prefix="/v1", tags=["identity"])

Operator = Annotated[Caller, require_assignment(Role.OPERATOR)]
# Rows per chunk of the export stream.
EXPORT_BATCH = 2000


class ImportOut(BaseModel):
    created: int
    changed: int
    unchanged: int
    total: int
    changes: bool = Field(description="False when the file matched the register: nothing was written.")


@router.post(
    "/territories:import",
    response_model=ImportOut,
    summary="Import the register (text/csv or application/json, streamed): all or nothing (national operator)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def import_territories(
    request: Request,
    caller: Operator,
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    file_format: Annotated[BulkFormat | None, Query(alias="format")] = None,
) -> ImportOut:
    """Upsert by code; the same file twice changes nothing and says so. Any bad row refuses the
    whole file: 422 `import_invalid` with `errors` = [{line, code, detail, field}]."""
    caller.require_national(Role.OPERATOR)
    fmt = format_of(content_type=request.headers.get("content-type"), declared=file_format)
    chunks = capped(request.stream(), runtime.settings.max_import_bytes, what="the import")
    rows = read_rows(chunks, fmt, columns=register_import.COLUMNS, required=register_import.REQUIRED)
    result = await register_import.import_rows(uow, rows, actor=caller.subject)
    return ImportOut(
        created=result.created,
        changed=result.changed,
        unchanged=result.unchanged,
        total=result.total,
        changes=bool(result.created or result.changed),
    )


@router.get(
    "/territories:export",
    summary="The register in force on a day, parents first, as CSV or JSON (streamed, public)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
)
async def export_territories(
    runtime: RuntimeDep,
    as_of: Annotated[date | None, Query(description="YYYY-MM-DD; default today (UTC)")] = None,
    file_format: Annotated[BulkFormat, Query(alias="format")] = BulkFormat.CSV,
) -> StreamingResponse:
    day = as_of or datetime.now(UTC).date()

    async def body() -> AsyncIterator[bytes]:
        # Its own transaction: the stream outlives the request's unit of work.
        async with runtime.db.transaction() as session:
            rows = register_import.export(session, day)
            if file_format is BulkFormat.CSV:
                async for chunk in csv_chunks(rows):
                    yield chunk
            else:
                async for chunk in json_chunks(rows):
                    yield chunk

    media = "text/csv; charset=utf-8" if file_format is BulkFormat.CSV else "application/json"
    filename = f"territories-{day.isoformat()}.{file_format.value}"
    return StreamingResponse(
        body(), media_type=media, headers={"content-disposition": f'attachment; filename="{filename}"'}
    )


async def csv_chunks(rows: AsyncIterator[register_import.ExportRow]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(register_import.COLUMNS)
    count = 0
    async for code, name, kind, parent_code, valid_from, status in rows:
        writer.writerow((code, name, kind, parent_code, valid_from.isoformat(), status))
        count += 1
        if count % EXPORT_BATCH == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


async def json_chunks(rows: AsyncIterator[register_import.ExportRow]) -> AsyncIterator[bytes]:
    parts: list[str] = []
    first = True
    yield b"["
    async for code, name, kind, parent_code, valid_from, status in rows:
        item = {
            "code": code,
            "name": name,
            "kind": kind,
            "parent_code": parent_code,
            "valid_from": valid_from.isoformat(),
            "status": status,
        }
        parts.append(("\n" if first else ",\n") + json.dumps(item, ensure_ascii=False))
        first = False
        if len(parts) >= EXPORT_BATCH:
            yield "".join(parts).encode()
            parts.clear()
    parts.append("\n]\n")
    yield "".join(parts).encode()
