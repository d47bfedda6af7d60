"""REST transport of projects' open data: national and local aggregates, and the bulk export
(OC4IDS project package or CSV). Public and cacheable for a minute."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep
from comuna_platform.http.streamed import MAX_DOWNLOADS, download_slots
from comuna_platform.money import major_units
from comuna_platform.runtime import Runtime
from comuna_projects.domain import open_data
from comuna_projects.domain.open_data import Scope
from comuna_projects.vocabulary import Stage

router = APIRouter(prefix="/v1", tags=["open data"])

CACHE = "public, max-age=60"
Code = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Z0-9]+(\.[A-Z0-9]+)*$")]


class MoneyOut(BaseModel):
    currency: str
    committed_minor: int = Field(description="Budgets of the projects, or what a cancelled one had been paid.")
    disbursed_minor: int = Field(description="Paid by funding to the communes.")
    spent_minor: int = Field(description="Spent by the communes, with receipts.")
    committed: str = Field(description="The same, in major units as exact decimal text.", examples=["10000.00"])
    disbursed: str
    spent: str


class GroupOut(BaseModel):
    key: str | None = Field(description="The status, category, state or municipality code; null when unknown.")
    projects: int
    money: list[MoneyOut]


class StatsOut(BaseModel):
    filters: dict[str, str | None]
    projects: int
    money: list[MoneyOut]
    by_status: list[GroupOut]
    by_category: list[GroupOut]
    by_state: list[GroupOut]
    by_municipality: list[GroupOut]


def _money(items: list[open_data.Money]) -> list[MoneyOut]:
    return [
        MoneyOut(
            currency=m.currency,
            committed_minor=m.committed_minor,
            disbursed_minor=m.disbursed_minor,
            spent_minor=m.spent_minor,
            committed=major_units(m.committed_minor, m.currency),
            disbursed=major_units(m.disbursed_minor, m.currency),
            spent=major_units(m.spent_minor, m.currency),
        )
        for m in items
    ]


def _groups(groups: list[open_data.Group]) -> list[GroupOut]:
    return [GroupOut(key=g.key, projects=g.projects, money=_money(g.money)) for g in groups]


def _scope(
    consultation_id: uuid.UUID | None,
    commune_id: uuid.UUID | None,
    state_code: str | None,
    municipality_code: str | None,
    status: Stage | None = None,
) -> Scope:
    return Scope(
        consultation_id=consultation_id,
        commune_id=commune_id,
        state_code=state_code,
        municipality_code=municipality_code,
        status=None if status is None else status.value,
    )


@router.get(
    "/stats",
    response_model=StatsOut,
    summary="Projects by status, category, state and municipality, and money committed, disbursed and spent "
    "(national, or of one consultation, commune, state or municipality; public)",
)
async def stats(
    uow: UnitOfWorkDep,
    response: Response,
    *,
    consultation_id: uuid.UUID | None = None,
    commune_id: uuid.UUID | None = None,
    state_code: Code = None,
    municipality_code: Code = None,
) -> StatsOut:
    scope = _scope(consultation_id, commune_id, state_code, municipality_code)
    found = await open_data.aggregates(uow, scope)
    response.headers["Cache-Control"] = CACHE
    return StatsOut(
        filters={
            "consultation_id": None if consultation_id is None else str(consultation_id),
            "commune_id": None if commune_id is None else str(commune_id),
            "state_code": state_code,
            "municipality_code": municipality_code,
        },
        projects=found.projects,
        money=_money(found.money),
        by_status=_groups(found.groups["status"]),
        by_category=_groups(found.groups["category"]),
        by_state=_groups(found.groups["state_code"]),
        by_municipality=_groups(found.groups["municipality_code"]),
    )


class ExportFormat(StrEnum):
    OC4IDS = "oc4ids"
    CSV = "csv"


@router.get(
    "/exports/projects",
    response_class=StreamingResponse,
    summary="Every project in scope as an OC4IDS project package (JSON) or one CSV row each (streamed, public)",
    description="Filters combine; none: every project. OC4IDS: `{uri, publishedDate, publisher, version, "
    "projects: [...]}` in the OC4IDS 0.9.5 project schema, payment milestones pointing at the ledger's "
    'transactions (docs/projects.md, "Open data"). CSV: a header, then one row per project, amounts in '
    f"major units, UTF-8 with a byte-order mark. 503 `exports_busy` while {MAX_DOWNLOADS} exports stream here.",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def export_projects(
    *,
    request: Request,
    runtime: RuntimeDep,
    consultation_id: uuid.UUID | None = None,
    commune_id: uuid.UUID | None = None,
    state_code: Code = None,
    municipality_code: Code = None,
    status: Stage | None = None,
    file_format: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.OC4IDS,
) -> StreamingResponse:
    scope = _scope(consultation_id, commune_id, state_code, municipality_code, status)
    slots = download_slots(request)
    base_url = str(request.base_url).rstrip("/")
    csv = file_format is ExportFormat.CSV
    return StreamingResponse(
        _stream(runtime, slots, scope, file_format, base_url=base_url, uri=str(request.url)),
        media_type="text/csv; charset=utf-8" if csv else "application/json",
        headers={
            "Cache-Control": CACHE,
            "Content-Disposition": f'attachment; filename="projects.{"csv" if csv else "json"}"',
        },
    )


async def _stream(
    runtime: Runtime, slots: asyncio.Semaphore, scope: Scope, file_format: ExportFormat, *, base_url: str, uri: str
) -> AsyncIterator[bytes]:
    # Its own transaction: the stream outlives the request's unit of work.
    async with slots, runtime.db.transaction() as session:
        document = (
            open_data.csv_document(session, scope, base_url=base_url)
            if file_format is ExportFormat.CSV
            else open_data.oc4ids_package(session, scope, base_url=base_url, uri=uri, now=runtime.clock.now())
        )
        async for chunk in document:
            yield chunk.encode()
