"""Queries over the projects tables. No business rules here, only data access."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, String, case, delete, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_projects.storage.models import (
    Base,
    ChangeRequest,
    EvidenceFile,
    Expenditure,
    KnownCandidate,
    Milestone,
    MilestoneReturn,
    OversightReport,
    PlanRevision,
    ProgressReport,
    Project,
    ReportEvidence,
)


async def project_by_id(session: AsyncSession, project_id: uuid.UUID, *, for_update: bool = False) -> Project | None:
    query = select(Project).where(Project.id == project_id)
    if for_update:
        # Row lock: every state change of a project or its milestones takes it first, so
        # concurrent verifications and fundings of one project run one after the other.
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def project_by_allocation(session: AsyncSession, allocation_id: uuid.UUID) -> Project | None:
    return (await session.execute(select(Project).where(Project.allocation_id == allocation_id))).scalar_one_or_none()


async def insert_project_if_absent(session: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Insert a project unless one exists for its allocation (or id); True if inserted.

    ON CONFLICT DO NOTHING rather than check-then-insert: two copies of an allocation event
    handled at once (by two replicas) must not both pass a check and then one of them fail.
    """
    inserted = await session.execute(insert(Project).values(**values).on_conflict_do_nothing().returning(Project.id))
    return inserted.first() is not None


async def insert_milestones(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    await session.execute(insert(Milestone), list(rows))


async def milestones_of(session: AsyncSession, project_id: uuid.UUID) -> list[Milestone]:
    rows = await session.execute(
        select(Milestone).where(Milestone.project_id == project_id).order_by(Milestone.sequence)
    )
    return list(rows.scalars().all())


async def milestones_of_many(
    session: AsyncSession, project_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Milestone]]:
    if not project_ids:
        return {}
    rows = await session.execute(
        select(Milestone)
        .where(Milestone.project_id.in_(project_ids))
        .order_by(Milestone.project_id, Milestone.sequence)
    )
    grouped: dict[uuid.UUID, list[Milestone]] = {pid: [] for pid in project_ids}
    for milestone in rows.scalars():
        grouped[milestone.project_id].append(milestone)
    return grouped


async def project_id_of_milestone(session: AsyncSession, milestone_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(Milestone.project_id).where(Milestone.id == milestone_id))


async def milestone_by_id(session: AsyncSession, milestone_id: uuid.UUID) -> Milestone | None:
    return await session.get(Milestone, milestone_id)


async def milestone_with_disbursement(session: AsyncSession, disbursement_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(Milestone.id).where(Milestone.disbursement_id == disbursement_id))


async def list_projects(
    session: AsyncSession,
    *,
    consultation_id: uuid.UUID | None,
    commune_id: uuid.UUID | None,
    status: str | None = None,
    after: uuid.UUID | None,
    limit: int,
) -> list[Project]:
    """Projects matching the filters, in id order (a stable keyset for paging)."""
    query = select(Project).order_by(Project.id).limit(limit)
    if status is not None:
        query = query.where(Project.status == status)
    if consultation_id is not None:
        query = query.where(Project.consultation_id == consultation_id)
    if commune_id is not None:
        query = query.where(Project.commune_id == commune_id)
    if after is not None:
        query = query.where(Project.id > after)
    return list((await session.execute(query)).scalars().all())


async def delete_milestones(session: AsyncSession, milestone_ids: Sequence[uuid.UUID]) -> None:
    if milestone_ids:
        await session.execute(delete(Milestone).where(Milestone.id.in_(milestone_ids)))


async def category_of_candidate(session: AsyncSession, candidate_id: uuid.UUID) -> str | None:
    return await session.scalar(select(KnownCandidate.category).where(KnownCandidate.candidate_id == candidate_id))


async def remember_candidate(session: AsyncSession, candidate_id: uuid.UUID, category: str) -> None:
    """Keep a candidate's category, and give it to any project made from it without one yet
    (the allocation may have been handled before the candidate's event arrived)."""
    await session.execute(
        insert(KnownCandidate)
        .values(candidate_id=candidate_id, category=category)
        .on_conflict_do_update(index_elements=[KnownCandidate.candidate_id], set_={"category": category})
    )
    await session.execute(
        update(Project)
        .where(Project.candidate_id == candidate_id, Project.category.is_(None))
        .values(category=category)
    )


# --- plans ----------------------------------------------------------------------------------


async def add(session: AsyncSession, row: Base) -> None:
    session.add(row)
    await session.flush()


async def milestone_returns(session: AsyncSession, project_id: uuid.UUID) -> list[MilestoneReturn]:
    rows = await session.execute(
        select(MilestoneReturn).where(MilestoneReturn.project_id == project_id).order_by(MilestoneReturn.returned_at)
    )
    return list(rows.scalars())


async def plan_revisions(session: AsyncSession, project_id: uuid.UUID) -> list[PlanRevision]:
    rows = await session.execute(
        select(PlanRevision).where(PlanRevision.project_id == project_id).order_by(PlanRevision.revision)
    )
    return list(rows.scalars())


async def change_request(session: AsyncSession, project_id: uuid.UUID, request_id: uuid.UUID) -> ChangeRequest | None:
    return await session.scalar(
        select(ChangeRequest).where(ChangeRequest.id == request_id, ChangeRequest.project_id == project_id)
    )


async def change_requests(session: AsyncSession, project_id: uuid.UUID) -> list[ChangeRequest]:
    rows = await session.execute(
        select(ChangeRequest).where(ChangeRequest.project_id == project_id).order_by(ChangeRequest.requested_at)
    )
    return list(rows.scalars())


async def open_change_request(session: AsyncSession, project_id: uuid.UUID) -> ChangeRequest | None:
    return await session.scalar(
        select(ChangeRequest).where(ChangeRequest.project_id == project_id, ChangeRequest.state == "open")
    )


# --- evidence, reports, spending ------------------------------------------------------------


async def insert_evidence_if_absent(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Record a stored file once: a second upload of the same content keeps the first row."""
    await session.execute(insert(EvidenceFile).values(**values).on_conflict_do_nothing())


async def evidence_file(session: AsyncSession, sha256: str) -> EvidenceFile | None:
    return await session.get(EvidenceFile, sha256)


async def known_evidence(session: AsyncSession, hashes: Sequence[str]) -> set[str]:
    if not hashes:
        return set()
    rows = await session.execute(select(EvidenceFile.sha256).where(EvidenceFile.sha256.in_(hashes)))
    return set(rows.scalars())


async def cite_evidence(session: AsyncSession, kind: str, report_id: uuid.UUID, hashes: Sequence[str]) -> None:
    if hashes:
        await session.execute(
            insert(ReportEvidence),
            [{"kind": kind, "report_id": report_id, "position": i, "sha256": h} for i, h in enumerate(hashes)],
        )


async def evidence_of(session: AsyncSession, kind: str, report_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    cited: dict[uuid.UUID, list[str]] = {rid: [] for rid in report_ids}
    if not report_ids:
        return cited
    rows = await session.execute(
        select(ReportEvidence.report_id, ReportEvidence.sha256)
        .where(ReportEvidence.kind == kind, ReportEvidence.report_id.in_(report_ids))
        .order_by(ReportEvidence.report_id, ReportEvidence.position)
    )
    for report_id, sha256 in rows:
        cited[report_id].append(sha256)
    return cited


async def progress_reports(session: AsyncSession, project_id: uuid.UUID) -> list[ProgressReport]:
    rows = await session.execute(
        select(ProgressReport).where(ProgressReport.project_id == project_id).order_by(ProgressReport.reported_at)
    )
    return list(rows.scalars())


async def expenditures(session: AsyncSession, project_id: uuid.UUID) -> list[Expenditure]:
    rows = await session.execute(
        select(Expenditure)
        .where(Expenditure.project_id == project_id)
        .order_by(Expenditure.spent_on, Expenditure.recorded_at)
    )
    return list(rows.scalars())


async def expenditure(session: AsyncSession, expenditure_id: uuid.UUID) -> Expenditure | None:
    return await session.get(Expenditure, expenditure_id)


async def oversight_reports(session: AsyncSession, project_id: uuid.UUID) -> list[OversightReport]:
    rows = await session.execute(
        select(OversightReport).where(OversightReport.project_id == project_id).order_by(OversightReport.filed_at)
    )
    return list(rows.scalars())


async def oversight_report(
    session: AsyncSession, project_id: uuid.UUID, report_id: uuid.UUID, *, for_update: bool = False
) -> OversightReport | None:
    query = select(OversightReport).where(OversightReport.id == report_id, OversightReport.project_id == project_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


# --- the stall detector ---------------------------------------------------------------------


async def projects_in_execution(session: AsyncSession, *, after: uuid.UUID | None, limit: int) -> list[Project]:
    """Projects in execution, in id order, locked (skipping any a use case holds right now:
    it is looked at again on the next pass)."""
    query = (
        select(Project)
        .where(Project.status == "in_execution")
        .order_by(Project.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if after is not None:
        query = query.where(Project.id > after)
    return list((await session.execute(query)).scalars())


# --- open data ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """Which projects an aggregate or an export covers; every filter set must hold."""

    consultation_id: uuid.UUID | None = None
    commune_id: uuid.UUID | None = None
    state_code: str | None = None
    municipality_code: str | None = None
    status: str | None = None


def _scoped(query: Select[Any], scope: Scope) -> Select[Any]:
    for column, value in (
        (Project.consultation_id, scope.consultation_id),
        (Project.commune_id, scope.commune_id),
        (Project.state_code, scope.state_code),
        (Project.municipality_code, scope.municipality_code),
        (Project.status, scope.status),
    ):
        if value is not None:
            query = query.where(column == value)
    return query


@dataclass(frozen=True, slots=True)
class AggregateRow:
    key: str | None
    currency: str
    projects: int
    committed_minor: int
    disbursed_minor: int
    spent_minor: int


# What stays committed to a project: its budget, or, once cancelled, what it had been paid (the
# rest went back to the funder).
_COMMITTED = case((Project.status == "cancelled", Project.disbursed_minor), else_=Project.budget_minor)


async def aggregate(session: AsyncSession, scope: Scope, by: str | None) -> list[AggregateRow]:
    """Projects and money per currency, grouped by a column of projects (None: all together)."""
    key = getattr(Project, by) if by is not None else literal(None, String)
    query = _scoped(
        select(
            key.label("key"),
            Project.currency,
            func.count().label("projects"),
            func.coalesce(func.sum(_COMMITTED), 0).label("committed"),
            func.coalesce(func.sum(Project.disbursed_minor), 0).label("disbursed"),
            func.coalesce(func.sum(Project.spent_minor), 0).label("spent"),
        ).group_by(key, Project.currency),
        scope,
    ).order_by(key, Project.currency)
    return [
        AggregateRow(r.key, r.currency, int(r.projects), int(r.committed), int(r.disbursed), int(r.spent))
        for r in await session.execute(query)
    ]


async def begin_snapshot(session: AsyncSession) -> None:
    """Make the session's transaction one read-only snapshot (its first statement): every page of
    an export then describes the same moment, whatever commits meanwhile."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


async def projects_page(session: AsyncSession, scope: Scope, *, after: uuid.UUID | None, limit: int) -> list[Project]:
    query = _scoped(select(Project).order_by(Project.id).limit(limit), scope)
    if after is not None:
        query = query.where(Project.id > after)
    return list((await session.execute(query)).scalars())


async def latest_reports(session: AsyncSession, project_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ProgressReport]:
    if not project_ids:
        return {}
    rows = await session.execute(
        select(ProgressReport)
        .where(ProgressReport.project_id.in_(project_ids))
        .ext(distinct_on(ProgressReport.project_id))
        .order_by(ProgressReport.project_id, ProgressReport.reported_at.desc())
    )
    return {r.project_id: r for r in rows.scalars()}
