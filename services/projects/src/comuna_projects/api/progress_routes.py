"""REST transport of progress, spending and residents' oversight: evidence uploads, progress
reports, expenditures, and oversight reports with their review, public answer and closing."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request

from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import TerritoryLineagesDep, require_assignment
from comuna_platform.auth.roles import Role
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep
from comuna_platform.http.streamed import read_capped
from comuna_projects.api.deps import EvidencePolicyDep, EvidenceStoreDep, FundingLedgerDep
from comuna_projects.api.schemas import (
    AnswerIn,
    EvidenceOut,
    ExpenditureIn,
    ExpenditureOut,
    Items,
    OversightReportFull,
    OversightReportIn,
    OversightReportOut,
    ProgressIn,
    ProgressReportOut,
)
from comuna_projects.api.views import expenditure_out, oversight_full, oversight_out, progress_out
from comuna_projects.domain import oversight, progress, records, residents
from comuna_projects.domain.access import OVERSEERS, READERS, RUNNERS, require_reader

router = APIRouter(prefix="/v1", tags=["progress and oversight"])

Runner = Annotated[Caller, require_assignment(*RUNNERS)]
Overseer = Annotated[Caller, require_assignment(*OVERSEERS)]
Resident = Annotated[Caller, require_assignment(Role.RESIDENT)]
Reader = Annotated[Caller, require_assignment(*READERS)]
# Whoever files something that cites evidence: spokespeople, overseers, operators, residents.
Uploader = Annotated[Caller, require_assignment(*RUNNERS, *OVERSEERS, Role.RESIDENT)]


@router.post(
    "/evidence:upload",
    response_model=EvidenceOut,
    status_code=201,
    summary="Upload an evidence file (photo or document; the raw bytes as the body)",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string"}}}}
    },
    responses={413: {"description": "bigger than `EVIDENCE_MAX_BYTES`"}},
)
async def upload_evidence(
    request: Request,
    *,
    caller: Uploader,
    uow: UnitOfWorkDep,
    store: EvidenceStoreDep,
    policy: EvidencePolicyDep,
    runtime: RuntimeDep,
) -> EvidenceOut:
    """Stored at the SHA-256 of its content, once however often it is sent (201 either way,
    `created` says whether it is new). The type comes from the content (JPEG, PNG, WebP, HEIC
    or PDF), never from the name or `Content-Type`."""
    data = await read_capped(request.stream(), policy.max_bytes, what="the evidence file")
    stored = await progress.upload_evidence(uow, store, policy, data, uploader=caller.subject, now=runtime.clock.now())
    return EvidenceOut(
        sha256=stored.sha256,
        media_type=stored.media_type,
        size_bytes=stored.size,
        created=stored.created,
        url=f"/v1/evidence/{stored.sha256}",
    )


@router.post(
    "/projects/{project_id}/progress-reports",
    response_model=ProgressReportOut,
    status_code=201,
    summary="Report progress with evidence; clears the stalled flag (spokesperson)",
)
async def report_progress(
    project_id: uuid.UUID,
    body: ProgressIn,
    *,
    caller: Runner,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> ProgressReportOut:
    outcome = await progress.report_progress(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        percent_complete=body.percent_complete,
        text=body.text,
        evidence=body.evidence,
        now=runtime.clock.now(),
    )
    return progress_out(outcome.report, outcome.evidence)


@router.post(
    "/projects/{project_id}/expenditures",
    response_model=ExpenditureOut,
    status_code=201,
    summary="Record money spent, with its receipt, within what funding disbursed (spokesperson)",
)
async def record_expenditure(
    project_id: uuid.UUID,
    body: ExpenditureIn,
    *,
    caller: Runner,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    funding: FundingLedgerDep,
    runtime: RuntimeDep,
) -> ExpenditureOut:
    row = await progress.record_expenditure(
        uow,
        caller,
        lineages=lineages,
        funding=funding,
        project_id=project_id,
        expenditure=oversight.Expenditure(
            amount_minor=body.amount_minor,
            currency=body.currency,
            spent_on=body.spent_on,
            supplier=body.supplier,
            description=body.description,
        ),
        receipt_sha256=body.receipt_sha256,
        now=runtime.clock.now(),
        expenditure_id=body.expenditure_id,
    )
    return expenditure_out(row)


@router.post(
    "/projects/{project_id}/oversight-reports",
    response_model=OversightReportOut,
    status_code=201,
    summary="File a complaint or observation on a project of your commune (resident)",
)
async def file_oversight_report(
    project_id: uuid.UUID,
    body: OversightReportIn,
    *,
    caller: Resident,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> OversightReportOut:
    outcome = await residents.file_report(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        kind=body.kind,
        text=body.text,
        evidence=body.evidence,
        now=runtime.clock.now(),
    )
    return oversight_out(outcome.report, outcome.evidence)


@router.get(
    "/projects/{project_id}/oversight-reports:full",
    response_model=Items[OversightReportFull],
    summary="Oversight reports with who filed, reviewed and answered them (auditor, overseer)",
)
async def list_oversight_reports_full(
    project_id: uuid.UUID, *, caller: Reader, uow: UnitOfWorkDep, lineages: TerritoryLineagesDep
) -> Items[OversightReportFull]:
    await require_reader(caller, lineages, await records.project_or_404(uow, project_id))
    return Items(items=[oversight_full(r, e) for r, e in await records.oversight_reports(uow, project_id)])


async def _move(
    project_id: uuid.UUID,
    report_id: uuid.UUID,
    action: oversight.ReportMove,
    *,
    answer: str | None,
    caller: Caller,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> OversightReportOut:
    outcome = await residents.move_report(
        uow,
        caller,
        lineages=lineages,
        project_id=project_id,
        report_id=report_id,
        action=action,
        answer=answer,
        now=runtime.clock.now(),
    )
    return oversight_out(outcome.report, outcome.evidence)


@router.post(
    "/projects/{project_id}/oversight-reports/{report_id}:review",
    response_model=OversightReportOut,
    summary="Take a resident's report under review (overseer)",
)
async def review_oversight_report(
    project_id: uuid.UUID,
    report_id: uuid.UUID,
    *,
    caller: Overseer,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> OversightReportOut:
    return await _move(
        project_id,
        report_id,
        oversight.ReportMove.REVIEW,
        answer=None,
        caller=caller,
        uow=uow,
        lineages=lineages,
        runtime=runtime,
    )


@router.post(
    "/projects/{project_id}/oversight-reports/{report_id}:answer",
    response_model=OversightReportOut,
    summary="Answer a report under review; the answer is public (overseer)",
)
async def answer_oversight_report(
    project_id: uuid.UUID,
    report_id: uuid.UUID,
    body: AnswerIn,
    *,
    caller: Overseer,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> OversightReportOut:
    return await _move(
        project_id,
        report_id,
        oversight.ReportMove.ANSWER,
        answer=body.answer,
        caller=caller,
        uow=uow,
        lineages=lineages,
        runtime=runtime,
    )


@router.post(
    "/projects/{project_id}/oversight-reports/{report_id}:close",
    response_model=OversightReportOut,
    summary="Close an answered report (overseer)",
)
async def close_oversight_report(
    project_id: uuid.UUID,
    report_id: uuid.UUID,
    *,
    caller: Overseer,
    uow: UnitOfWorkDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> OversightReportOut:
    return await _move(
        project_id,
        report_id,
        oversight.ReportMove.CLOSE,
        answer=None,
        caller=caller,
        uow=uow,
        lineages=lineages,
        runtime=runtime,
    )
