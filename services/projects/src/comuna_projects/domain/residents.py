"""Residents' oversight reports: a resident of the commune (signed in) files a complaint or an
observation on a project, with evidence; the oversight committee takes it under review,
answers it publicly, and closes it (`oversight.move_report`). Who filed a report is kept for
the committee and auditors, never published or put in an event."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.errors import NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork
from comuna_projects.domain import oversight
from comuna_projects.domain.access import require_overseer, require_resident
from comuna_projects.domain.events import OversightReportChanged
from comuna_projects.domain.progress import check_cited
from comuna_projects.domain.projects import locked_project
from comuna_projects.storage import repository
from comuna_projects.storage.models import OversightReport
from comuna_projects.vocabulary import ReportKind, ReportState


@dataclass(frozen=True)
class ReportOutcome:
    report: OversightReport
    evidence: list[str]


async def file_report(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    kind: ReportKind,
    text: str,
    evidence: Sequence[str],
    now: datetime,
) -> ReportOutcome:
    """A resident of the project's commune reports on it, whatever its stage."""
    project, _ = await locked_project(uow, project_id)
    await require_resident(caller, lineages, project)
    cited = await check_cited(uow, evidence)
    report = OversightReport(
        id=new_id(),
        project_id=project.id,
        kind=kind,
        text=text,
        filed_by=caller.subject,
        filed_at=now,
        state=ReportState.RECEIVED,
    )
    await repository.add(uow.session, report)
    await repository.cite_evidence(uow.session, "oversight", report.id, cited)
    await uow.stage(OversightReportChanged(report, now), aggregate_id=str(project.id))
    return ReportOutcome(report, cited)


async def move_report(
    uow: UnitOfWork,
    caller: Caller,
    *,
    lineages: TerritoryLineages,
    project_id: uuid.UUID,
    report_id: uuid.UUID,
    action: oversight.ReportMove,
    answer: str | None,
    now: datetime,
) -> ReportOutcome:
    """An overseer of the commune reviews, answers (publicly) or closes a report."""
    project, _ = await locked_project(uow, project_id)
    await require_overseer(caller, lineages, project)
    report = await repository.oversight_report(uow.session, project.id, report_id, for_update=True)
    if report is None:
        raise NotFound(f"oversight report {report_id} does not exist in project {project_id}", code="report_not_found")
    report.state = oversight.move_report(ReportState(report.state), action, answer=answer)
    if action is oversight.ReportMove.REVIEW:
        report.reviewed_by = caller.subject
    elif action is oversight.ReportMove.ANSWER:
        assert answer is not None
        report.answer = answer.strip()
        report.answered_by = caller.subject
        report.answered_at = now
    else:
        report.closed_at = now
    await uow.session.flush()
    await uow.stage(OversightReportChanged(report, now), aggregate_id=str(project.id))
    cited = (await repository.evidence_of(uow.session, "oversight", [report.id]))[report.id]
    return ReportOutcome(report, cited)
