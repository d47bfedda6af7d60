"""REST transport of the tables slice: centres and tables, check-ins, paper tally sheets."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from comuna_consultations.tables import usecases
from comuna_consultations.tables.lookup import VotingTable
from comuna_consultations.tables.schemas import (
    CandidateVotes,
    CentreIn,
    CentreOut,
    CentrePage,
    CheckInOut,
    ConfirmIn,
    DocumentIn,
    LayoutOut,
    PaperCheckInOut,
    TableIn,
    TableOut,
    TablePage,
    TallySheetIn,
    TallySheetOut,
)
from comuna_consultations.transport import PageToken, PseudonymsDep, RecordDep
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import CurrentCaller, TerritoryLineagesDep, require_assignment
from comuna_platform.bulk import format_of, read_rows
from comuna_platform.errors import ProblemError
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep
from comuna_platform.http.problems import problem_response
from comuna_platform.http.streamed import capped
from comuna_platform.paging import decode_page_token, encode_page_token
from comuna_platform.rate_limit import TableCheckInQuota

router = APIRouter(prefix="/v1", tags=["voting tables"])

# The role is checked here; over which communes, in the use case (every commune of the rows).
TablePlanner = Annotated[Caller, require_assignment(*usecases.TABLE_PLANNERS)]
# An officer of THIS table: checked in the use case (`lookup.require_table_officer`).
TableOfficer = CurrentCaller

_RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "too many check-ins by this officer: `rate_limited`, with `Retry-After`"}
}


def _after_code(page_token: str) -> str:
    after = decode_page_token(page_token, [str])
    return str(after[0]) if after else ""


def _layout_out(report: usecases.LayoutReport) -> LayoutOut:
    return LayoutOut(
        centres_created=report.centres_created,
        tables_created=report.tables_created,
        communes_added=report.communes_added,
        unchanged=report.unchanged,
        total=report.total,
        changes=report.changes,
    )


def _table_out(t: VotingTable) -> TableOut:
    return TableOut(
        code=t.code, kind=t.kind, centre_code=t.centre_code, commune_id=t.commune_id, commune_code=t.commune_code
    )


def _sheet_out(s: usecases.SheetView) -> TallySheetOut:
    return TallySheetOut(
        id=s.id,
        table_code=s.table.code,
        commune_id=s.table.commune_id,
        votes=[CandidateVotes(candidate_id=c, votes=v) for c, v in s.votes.items()],
        blank=s.blank,
        null=s.null_votes,
        checked_in=s.checked_in,
        scan_sha256=s.scan_sha256.hex(),
        submitted_at=s.submitted_at,
        confirmed=s.confirmed_at is not None,
        confirmed_at=s.confirmed_at,
    )


@router.post(
    "/consultations/{consultation_id}/voting-centres:import",
    response_model=LayoutOut,
    summary="Import voting centres and their tables (text/csv or application/json): all or nothing",
    description="One row per table: `centre_code,centre_name,address,commune_code,table_code,table_kind` "
    "(`table_kind`: electronic, paper or offline). The CSV header is line 1; in JSON (an array of such objects) "
    "the line is the item's 1-based position. Any bad row: 422 `import_invalid` listing every bad line with its "
    "code (`commune_unknown`, `table_code_reused`, `table_kind_unknown`, `centre_differs`, ...), nothing written. "
    "Re-importing the same rows changes nothing. Only before voting opens (409 `voting_already_open`); the "
    "national operator, or a state or municipal official over every commune of the file.",
    openapi_extra={
        "requestBody": {
            "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "array"}}},
            "required": True,
        }
    },
)
async def import_centres(
    consultation_id: uuid.UUID,
    request: Request,
    *,
    caller: TablePlanner,
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    lineages: TerritoryLineagesDep,
) -> LayoutOut:
    fmt = format_of(content_type=request.headers.get("content-type", ""))
    chunks = capped(request.stream(), runtime.settings.max_import_bytes, what="the import")
    rows = read_rows(chunks, fmt, columns=usecases.COLUMNS, required=usecases.REQUIRED)
    report = await usecases.import_layout(
        uow, caller, consultation_id, rows, lineages=lineages, now=runtime.clock.now()
    )
    return _layout_out(report)


@router.post(
    "/consultations/{consultation_id}/voting-centres",
    status_code=status.HTTP_201_CREATED,
    response_model=LayoutOut,
    summary="Add one voting centre and the communes it serves (before voting opens)",
)
async def add_centre(
    consultation_id: uuid.UUID,
    body: CentreIn,
    *,
    caller: TablePlanner,
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    lineages: TerritoryLineagesDep,
) -> LayoutOut:
    rows = [
        usecases.LayoutRow(1, body.code, body.name, body.address, commune, None, None) for commune in body.commune_codes
    ]
    report = await usecases.add_layout(uow, caller, consultation_id, rows, lineages=lineages, now=runtime.clock.now())
    return _layout_out(report)


@router.post(
    "/consultations/{consultation_id}/tables",
    status_code=status.HTTP_201_CREATED,
    response_model=LayoutOut,
    summary="Add one voting table (its centre created if new; before voting opens)",
)
async def add_table(
    consultation_id: uuid.UUID,
    body: TableIn,
    *,
    caller: TablePlanner,
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    lineages: TerritoryLineagesDep,
) -> LayoutOut:
    row = usecases.LayoutRow(
        1, body.centre_code, body.centre_name, body.address, body.commune_code, body.table_code, body.table_kind.value
    )
    report = await usecases.add_layout(uow, caller, consultation_id, [row], lineages=lineages, now=runtime.clock.now())
    return _layout_out(report)


@router.get(
    "/consultations/{consultation_id}/voting-centres",
    response_model=CentrePage,
    summary="The voting centres and the communes each serves, by code (public)",
)
async def list_centres(
    consultation_id: uuid.UUID,
    uow: UnitOfWorkDep,
    page_token: PageToken = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CentrePage:
    page = await usecases.list_centres(uow, consultation_id, after_code=_after_code(page_token), limit=limit)
    items = [CentreOut(code=c.code, name=c.name, address=c.address, commune_codes=c.commune_codes) for c in page.items]
    return CentrePage(items=items, next_page_token=encode_page_token(items[-1].code) if page.more else None)


@router.get(
    "/consultations/{consultation_id}/tables",
    response_model=TablePage,
    summary="The voting tables, by code; optionally of one commune or one centre (public)",
)
async def list_tables(
    consultation_id: uuid.UUID,
    uow: UnitOfWorkDep,
    *,
    page_token: PageToken = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    commune_id: uuid.UUID | None = None,
    centre_code: Annotated[str | None, Query(max_length=64)] = None,
) -> TablePage:
    page = await usecases.list_tables(
        uow,
        consultation_id,
        after_code=_after_code(page_token),
        limit=limit,
        commune_id=commune_id,
        centre_code=centre_code,
    )
    items = [
        TableOut(
            code=t.code, kind=t.kind, centre_code=t.centre_code, commune_id=t.commune_id, commune_code=t.commune_code
        )
        for t in page.items
    ]
    return TablePage(items=items, next_page_token=encode_page_token(items[-1].code) if page.more else None)


@router.get(
    "/consultations/{consultation_id}/tables/{table_code}",
    response_model=TableOut,
    summary="One voting table (public)",
)
async def get_table(consultation_id: uuid.UUID, table_code: str, uow: UnitOfWorkDep) -> TableOut:
    return _table_out(await usecases.get_table(uow, consultation_id, table_code))


@router.post(
    "/consultations/{consultation_id}/tables/{table_code}:check-in",
    response_model=CheckInOut,
    summary="Electronic table: may this person vote here now? (an officer of this table; never says why not)",
    description="True only when the person is on the roll of this table's commune and has not taken part yet. "
    "Not registered, under age, another commune and already voted are all `false`. One token of the officer's "
    "`table_check_ins` limit per call. Only while the commune votes (409 `voting_not_open`).",
    responses=_RATE_LIMITED,
)
async def check_in(
    consultation_id: uuid.UUID,
    table_code: str,
    body: DocumentIn,
    *,
    caller: TableOfficer,
    quota: TableCheckInQuota,
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    lineages: TerritoryLineagesDep,
    pseudonyms: PseudonymsDep,
) -> CheckInOut:
    may_vote = await usecases.check_in(
        uow,
        caller,
        consultation_id,
        table_code,
        body.national_id,
        lineages=lineages,
        now=runtime.clock.now(),
        pseudonyms=pseudonyms,
    )
    if not may_vote:
        # Logged (at repetition) with the officer and the count, never the document.
        quota.failed("may_not_vote")
    return CheckInOut(may_vote=may_vote)


@router.post(
    "/consultations/{consultation_id}/tables/{table_code}/check-ins",
    status_code=status.HTTP_201_CREATED,
    response_model=PaperCheckInOut,
    summary="Paper table: record that this person took part here (an officer of this table)",
    description="403 `voter_not_on_roll` (one answer for every reason) writes nothing. 409 `already_took_part`: "
    "the person already took part through some channel; the attempt is kept as a participation conflict. One "
    "token of the officer's `table_check_ins` limit per call. Only while the commune votes.",
    responses={
        409: {"description": "`already_took_part` (recorded as a conflict), `voting_not_open`"},
        **_RATE_LIMITED,
    },
)
async def record_check_in(
    consultation_id: uuid.UUID,
    table_code: str,
    body: DocumentIn,
    request: Request,
    *,
    caller: TableOfficer,
    quota: TableCheckInQuota,
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    lineages: TerritoryLineagesDep,
    pseudonyms: PseudonymsDep,
) -> PaperCheckInOut | Response:
    try:
        new = await usecases.record_paper_check_in(
            uow,
            caller,
            consultation_id,
            table_code,
            body.national_id,
            lineages=lineages,
            now=runtime.clock.now(),
            pseudonyms=pseudonyms,
        )
    except ProblemError as exc:
        if exc.code == "voter_not_on_roll":
            quota.failed(exc.code)
        raise
    if not new:
        quota.failed("already_took_part")
        # Answered, not raised: the unit of work commits the conflict row this attempt wrote.
        refused = usecases.already_took_part()
        return problem_response(
            request, status=refused.status, code=refused.code, title=refused.title, detail=refused.detail
        )
    return PaperCheckInOut(recorded=True)


@router.post(
    "/consultations/{consultation_id}/tables/{table_code}/tally-sheet",
    status_code=status.HTTP_201_CREATED,
    response_model=TallySheetOut,
    summary="Paper table: submit (or correct, until confirmed) the tally sheet once the commune's voting closed",
    description="Votes per candidate of the table's commune (a candidate left out has 0), blank, null, the number "
    "checked in and the SHA-256 of the scan or photo. Refused, nothing written: before the commune's voting closed "
    "(`voting_not_closed`), `checked_in_mismatch` (not the check-ins recorded here), `tally_exceeds_check_ins`, "
    "`candidate_not_in_commune`, `wrong_table_kind`, `tally_sheet_confirmed` (a confirmed sheet is final).",
)
async def submit_tally_sheet(
    consultation_id: uuid.UUID,
    table_code: str,
    body: TallySheetIn,
    *,
    caller: TableOfficer,
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    lineages: TerritoryLineagesDep,
) -> TallySheetOut:
    sheet_in = usecases.SheetIn(
        votes={v.candidate_id: v.votes for v in body.votes},
        blank=body.blank,
        null_votes=body.null,
        checked_in=body.checked_in,
        scan_sha256=bytes.fromhex(body.scan_sha256),
    )
    sheet = await usecases.submit_tally_sheet(
        uow, caller, consultation_id, table_code, sheet_in, lineages=lineages, now=runtime.clock.now()
    )
    return _sheet_out(sheet)


@router.post(
    "/consultations/{consultation_id}/tables/{table_code}/tally-sheet:confirm",
    response_model=TallySheetOut,
    summary="Paper table: a SECOND officer of the same table confirms the sheet they read (final)",
    description="403 `second_officer_required` for the officer who submitted it; 409 `tally_sheet_replaced` when a "
    "correction replaced the sheet named; 409 `tally_sheet_already_confirmed`. Emits "
    "`consultations.tally_sheet.confirmed`.",
)
async def confirm_tally_sheet(
    consultation_id: uuid.UUID,
    table_code: str,
    body: ConfirmIn,
    *,
    caller: TableOfficer,
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    lineages: TerritoryLineagesDep,
    record: RecordDep,
) -> TallySheetOut:
    sheet = await usecases.confirm_tally_sheet(
        uow,
        caller,
        consultation_id,
        table_code,
        body.sheet_id,
        lineages=lineages,
        record=record,
        now=runtime.clock.now(),
    )
    return _sheet_out(sheet)


@router.get(
    "/consultations/{consultation_id}/tables/{table_code}/tally-sheet",
    response_model=TallySheetOut,
    summary="A paper table's tally sheet, confirmed or not (public, once the commune's voting closed)",
)
async def get_tally_sheet(
    consultation_id: uuid.UUID, table_code: str, uow: UnitOfWorkDep, runtime: RuntimeDep
) -> TallySheetOut:
    return _sheet_out(await usecases.get_tally_sheet(uow, consultation_id, table_code, now=runtime.clock.now()))
