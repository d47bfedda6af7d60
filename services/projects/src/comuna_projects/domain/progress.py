"""Progress and spending: evidence files, progress reports, expenditures.

- Evidence files are stored content-addressed (`domain.evidence`, `storage.evidence_store`)
  and recorded once by hash; reports cite them by hash, and a cited hash must be a stored file.
- A progress report (percent complete, text, evidence) is the project's heartbeat: it clears
  the stalled flag (`lifecycle`).
- An expenditure never takes what a project spent past what funding disbursed to it. Checked
  twice: against what funding's ledger says now (`FundingLedger`, over gRPC), and by the
  database against the disbursements this service recorded (`ck_projects_spent_within_disbursed`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork
from comuna_projects.domain import lifecycle, oversight
from comuna_projects.domain.access import require_runner
from comuna_projects.domain.events import ExpenditureRecorded, ProgressReported, ProjectResumed
from comuna_projects.domain.evidence import EvidencePolicy, StoredEvidence, store_evidence
from comuna_projects.domain.projects import locked_project
from comuna_projects.storage import repository
from comuna_projects.storage.evidence_store import EvidenceStore, check_address
from comuna_projects.storage.models import EvidenceFile, Expenditure, ProgressReport, Project
from comuna_projects.vocabulary import Stage

MAX_EVIDENCE_PER_REPORT = 20
MAX_TEXT = 10_000


class FundingLedger(Protocol):
    """What funding's ledger says was disbursed to an allocation's commune for its project."""

    async def disbursed_minor(self, allocation_id: uuid.UUID) -> int: ...


async def upload_evidence(
    uow: UnitOfWork, store: EvidenceStore, policy: EvidencePolicy, data: bytes, *, uploader: str, now: datetime
) -> StoredEvidence:
    """Store a file (once per content) and record it, so reports may cite its hash."""
    stored = await store_evidence(store, data, policy)
    await repository.insert_evidence_if_absent(
        uow.session,
        {
            "sha256": stored.sha256,
            "media_type": stored.media_type,
            "size_bytes": stored.size,
            "uploaded_by": uploader,
            "uploaded_at": now,
        },
    )
    return stored


async def evidence_file(uow: UnitOfWork, sha256: str) -> EvidenceFile | None:
    return await repository.evidence_file(uow.session, check_address(sha256))


async def check_cited(uow: UnitOfWork, hashes: Sequence[str]) -> list[str]:
    """The cited hashes, each a stored file and cited once; InvalidInput otherwise."""
    cited = [check_address(h) for h in hashes]
    if len(cited) > MAX_EVIDENCE_PER_REPORT:
        raise InvalidInput(f"a report cites at most {MAX_EVIDENCE_PER_REPORT} files", code="evidence_too_many")
    if len(set(cited)) != len(cited):
        raise InvalidInput("a file is cited twice", code="evidence_repeated")
    missing = sorted(set(cited) - await repository.known_evidence(uow.session, cited))
    if missing:
        raise InvalidInput(
            f"no evidence file {missing[0]} was uploaded (POST /v1/evidence:upload first)",
            code="evidence_not_found",
            sha256=missing[0],
        )
    return cited


def _require_under_way(project: Project, what: str) -> None:
    if Stage(project.status) not in lifecycle.UNDER_WAY:
        raise FailedPrecondition(
            f"the project is {project.status}: {what} are taken while it is executed", code="project_not_under_way"
        )


@dataclass(frozen=True)
class ProgressOutcome:
    report: ProgressReport
    evidence: list[str]
    project: Project


async def report_progress(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    percent_complete: int,
    text: str,
    evidence: Sequence[str],
    now: datetime,
) -> ProgressOutcome:
    """Record a progress report; a stalled project resumes with it."""
    project, _ = await locked_project(uow, project_id)
    await require_runner(caller, lineages, project)
    _require_under_way(project, "progress reports")
    if not 0 <= percent_complete <= 100:
        raise InvalidInput("percent complete is 0 to 100", code="percent_invalid")
    cited = await check_cited(uow, evidence)
    report = ProgressReport(
        id=new_id(),
        project_id=project.id,
        percent_complete=percent_complete,
        text=text,
        reported_by=caller.subject,
        reported_at=now,
    )
    await repository.add(uow.session, report)
    await repository.cite_evidence(uow.session, "progress", report.id, cited)
    project.percent_complete = percent_complete
    project.last_report_at = now
    resumed = Stage(project.status) is Stage.STALLED
    if resumed:
        project.status = lifecycle.move(Stage.STALLED, lifecycle.Move.RESUME)
        project.stalled_since = None
        project.stall_reasons = []
    await uow.session.flush()
    await uow.stage(ProgressReported(report, cited), aggregate_id=str(project.id))
    if resumed:
        await uow.stage(ProjectResumed(project, report.id, now), aggregate_id=str(project.id))
    return ProgressOutcome(report, cited, project)


async def record_expenditure(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    funding: FundingLedger,
    project_id: uuid.UUID,
    expenditure: oversight.Expenditure,
    receipt_sha256: str,
    now: datetime,
    expenditure_id: uuid.UUID | None = None,
) -> Expenditure:
    """Record money spent, with its receipt, within what funding has disbursed to the project.

    `expenditure_id`, chosen by the client, makes a retry safe: the same id with the same
    expenditure answers the one recorded (nothing is counted twice); with another, 409.
    """
    project, _ = await locked_project(uow, project_id)
    await require_runner(caller, lineages, project)
    if expenditure_id is not None:
        # Under the project's lock: a concurrent copy of the request waits, then finds this one.
        recorded = await repository.expenditure(uow.session, expenditure_id)
        if recorded is not None:
            return _replayed(recorded, project, expenditure, receipt_sha256)
    _require_under_way(project, "expenditures")
    (receipt,) = await check_cited(uow, [receipt_sha256])
    oversight.check_expenditure(
        expenditure,
        currency=project.currency,
        spent_minor=project.spent_minor,
        disbursed_minor=project.disbursed_minor,
        today=now.date(),
    )
    # Funding's ledger is the authority on what reached the commune: checked last, after
    # everything that needs no call, and under the project's lock (no second expenditure can
    # pass between this answer and the write).
    disbursed = await funding.disbursed_minor(project.allocation_id)
    if project.spent_minor + expenditure.amount_minor > disbursed:
        raise FailedPrecondition(
            f"spending would reach {project.spent_minor + expenditure.amount_minor} {project.currency}; "
            f"funding's ledger shows {disbursed} disbursed",
            code="exceeds_disbursed",
        )
    row = Expenditure(
        id=expenditure_id or new_id(),
        project_id=project.id,
        amount_minor=expenditure.amount_minor,
        currency=expenditure.currency,
        spent_on=expenditure.spent_on,
        supplier=expenditure.supplier.strip(),
        description=expenditure.description.strip(),
        receipt_sha256=receipt,
        recorded_by=caller.subject,
        recorded_at=now,
    )
    await repository.add(uow.session, row)
    project.spent_minor += expenditure.amount_minor
    await uow.session.flush()
    await uow.stage(ExpenditureRecorded(row), aggregate_id=str(project.id))
    return row


def _replayed(
    recorded: Expenditure, project: Project, expenditure: oversight.Expenditure, receipt_sha256: str
) -> Expenditure:
    same = (
        recorded.project_id == project.id
        and (recorded.amount_minor, recorded.currency, recorded.spent_on)
        == (
            expenditure.amount_minor,
            expenditure.currency,
            expenditure.spent_on,
        )
        and (recorded.supplier, recorded.description, recorded.receipt_sha256)
        == (expenditure.supplier.strip(), expenditure.description.strip(), receipt_sha256)
    )
    if not same:
        raise Conflict(
            f"expenditure {recorded.id} was recorded with other details; use a new id for another expenditure",
            code="expenditure_id_reused",
        )
    return recorded
