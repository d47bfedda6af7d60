"""Open data about projects: aggregates (projects by status, category, state and municipality;
money committed, disbursed and spent, per currency), and the bulk export as an Open Contracting
for Infrastructure Data Standard (OC4IDS 0.9, schema 0.9.5) project package or as CSV a newspaper opens in a
spreadsheet.

OC4IDS mapping (docs/projects.md, "Open data"):
- `status`: planned -> preparation, in execution or stalled -> implementation, completed ->
  completion (handover and close-out done), cancelled -> cancelled; `sector` from the category;
- `budget.budgetBreakdowns`: one group, by funder, an entry per funder whose `sourceParty` is a
  party with role `funder`;
- `milestones`: per milestone a `delivery` milestone (met once verified) and a `payment`
  milestone (met once its tranche was paid), whose payment is in `transactions` with the
  ledger's transfer id and `relatedImplementationMilestone` pointing back at it;
- `metrics`: physical progress (percent complete) and financial progress (disbursed, spent).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_platform.money import major_units
from comuna_platform.uow import UnitOfWork
from comuna_projects.storage import repository
from comuna_projects.storage.models import Milestone, ProgressReport, Project
from comuna_projects.storage.repository import AggregateRow, Scope

__all__ = ["Scope"]

OC4IDS_VERSION = "0.9"
PAGE = 200

OC4IDS_STATUS = {
    "planned": "preparation",
    "in_execution": "implementation",
    "stalled": "implementation",
    "completed": "completion",
    "cancelled": "cancelled",
}
# Projects' categories as OC4IDS sectors (projectSector codelist; a subsector with its parent).
OC4IDS_SECTOR: dict[str, list[str]] = {
    "water": ["waterAndWaste"],
    "electricity": ["energy"],
    "health": ["health"],
    "education": ["education"],
    "roads": ["transport", "transport.road"],
    "housing": ["socialHousing"],
    "food_production": ["economy"],
    "sports": ["cultureSportsAndRecreation"],
    "culture": ["cultureSportsAndRecreation"],
}
GROUPINGS = ("status", "category", "state_code", "municipality_code")


# --- aggregates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Money:
    currency: str
    committed_minor: int
    disbursed_minor: int
    spent_minor: int


@dataclass(frozen=True)
class Group:
    key: str | None
    projects: int
    money: list[Money]


@dataclass(frozen=True)
class Aggregates:
    projects: int
    money: list[Money]
    # grouping ("status", "category", "state_code", "municipality_code") -> its groups
    groups: dict[str, list[Group]]


def _groups(rows: Sequence[AggregateRow]) -> list[Group]:
    by_key: dict[str | None, list[AggregateRow]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    return [
        Group(
            key=key,
            projects=sum(r.projects for r in found),
            money=[Money(r.currency, r.committed_minor, r.disbursed_minor, r.spent_minor) for r in found],
        )
        for key, found in by_key.items()
    ]


async def aggregates(uow: UnitOfWork, scope: Scope) -> Aggregates:
    """Counts and money of the projects in scope, in all and by each grouping, one snapshot."""
    session = uow.session
    await repository.begin_snapshot(session)
    total = _groups(await repository.aggregate(session, scope, None))
    groups = {by: _groups(await repository.aggregate(session, scope, by)) for by in GROUPINGS}
    return Aggregates(projects=total[0].projects if total else 0, money=total[0].money if total else [], groups=groups)


# --- OC4IDS ---------------------------------------------------------------------------------


def value(amount_minor: int, currency: str) -> dict[str, Any]:
    """An OC4IDS Value. The JSON number is written from the exact decimal text (a float whose
    shortest repr is that text, below 2^53 minor units), with the integer beside it."""
    return {"amount": float(major_units(amount_minor, currency)), "currency": currency, "amount_minor": amount_minor}


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def _day(on: date) -> str:
    return f"{on.isoformat()}T00:00:00Z"


def _compact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v not in (None, [], {})}


def commune_party(project: Project) -> dict[str, Any]:
    return {"id": f"commune-{project.commune_id}", "name": project.commune_code, "roles": ["publicAuthority"]}


def funder_party(source: str) -> dict[str, Any]:
    return {"id": f"funder-{source}", "name": source, "roles": ["funder"]}


def _milestones(project: Project, milestones: Sequence[Milestone]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(OC4IDS milestones, transactions): per milestone its delivery and its payment."""
    payer = funder_party(project.funders[0]["source"]) if project.funders else None
    payee = commune_party(project)
    out: list[dict[str, Any]] = []
    transactions: list[dict[str, Any]] = []
    for m in milestones:
        delivered = m.status in ("verified", "funded")
        out.append(
            _compact(
                {
                    "id": str(m.id),
                    "title": m.title,
                    "type": "delivery",
                    "status": "met" if delivered else "scheduled",
                    "dueDate": _day(m.due_on),
                    "dateMet": _time(m.verified_at),
                }
            )
        )
        payment_id = f"{m.id}-payment"
        out.append(
            _compact(
                {
                    "id": payment_id,
                    "title": f"Tranche: {m.title}",
                    "type": "payment",
                    "status": "met" if m.status == "funded" else "scheduled",
                    "dueDate": _day(m.due_on),
                    "dateMet": _time(m.funded_at),
                    "value": value(m.tranche_minor, m.currency),
                }
            )
        )
        if m.status == "funded" and m.funded_minor is not None:
            transactions.append(
                _compact(
                    {
                        # The ledger's transfer (funding's /v1/transfers and public journal).
                        "id": str(m.transfer_id or m.disbursement_id),
                        "date": _time(m.funded_at),
                        "value": value(m.funded_minor, m.currency),
                        "payer": None if payer is None else {"id": payer["id"], "name": payer["name"]},
                        "payee": {"id": payee["id"], "name": payee["name"]},
                        "relatedImplementationMilestone": {"id": payment_id, "title": f"Tranche: {m.title}"},
                    }
                )
            )
    return out, transactions


def oc4ids_project(
    project: Project, milestones: Sequence[Milestone], latest: ProgressReport | None, *, url: str
) -> dict[str, Any]:
    """One project in the OC4IDS project schema (with Comuna's own fields after it)."""
    milestone_items, transactions = _milestones(project, milestones)
    funders = [funder_party(f["source"]) for f in project.funders]
    end = max((m.due_on for m in milestones), default=None)
    updated = max(
        t
        for t in (
            project.created_at,
            project.started_at,
            project.last_report_at,
            project.completed_at,
            project.cancelled_at,
            *(m.verified_at for m in milestones),
            *(m.funded_at for m in milestones),
        )
        if t is not None
    )
    document = {
        "id": f"comuna-{project.id}",
        "updated": _time(updated),
        "title": project.title,
        "status": OC4IDS_STATUS[project.status],
        "sector": OC4IDS_SECTOR.get(project.category or "", []),
        "purpose": "A communal project chosen by the residents of its commune in a popular consultation.",
        "period": _compact({"startDate": _time(project.started_at), "endDate": None if end is None else _day(end)}),
        "locations": [
            {
                "id": "1",
                "description": project.commune_code,
                "gazetteer": {
                    "scheme": "comuna-territory-register",
                    "identifiers": [
                        c for c in (project.commune_code, project.municipality_code, project.state_code) if c
                    ],
                },
            }
        ],
        "budget": {
            "amount": value(project.budget_minor, project.currency),
            "budgetBreakdowns": [
                {
                    "id": "funders",
                    "description": "By funder: each funder's share of the budget",
                    "budgetBreakdown": [
                        {
                            "id": str(n),
                            "amount": value(int(f["amount_minor"]), project.currency),
                            "sourceParty": {"id": party["id"], "name": party["name"]},
                        }
                        for n, (f, party) in enumerate(zip(project.funders, funders, strict=True), start=1)
                    ],
                }
            ],
        },
        "parties": [commune_party(project), *funders],
        "publicAuthority": {"id": f"commune-{project.commune_id}", "name": project.commune_code},
        "milestones": milestone_items,
        "transactions": transactions,
        "metrics": [
            {
                "id": "physicalProgress",
                "title": "Physical progress (latest progress report)",
                "observations": [
                    _compact(
                        {
                            "id": "latest",
                            "measure": project.percent_complete,
                            "unit": {"name": "percent"},
                            "period": None
                            if latest is None
                            else {"startDate": _time(latest.reported_at), "endDate": _time(latest.reported_at)},
                        }
                    )
                ],
            },
            {
                "id": "financialProgress",
                "title": "Financial progress",
                "observations": [
                    {"id": "disbursed", "value": value(project.disbursed_minor, project.currency)},
                    {"id": "spent", "value": value(project.spent_minor, project.currency)},
                ],
            },
        ],
        "completion": None
        if project.completed_at is None
        else {"endDate": _time(project.completed_at), "finalValue": value(project.spent_minor, project.currency)},
        # Comuna's own: where the live record is, and what it says that OC4IDS has no field for.
        "comuna": _compact(
            {
                "url": url,
                "stage": project.status,
                "stall_reasons": list(project.stall_reasons) or None,
                "spokespeople": list(project.spokespeople) or None,
                "consultation_id": str(project.consultation_id),
                "allocation_id": str(project.allocation_id),
            }
        ),
    }
    return _compact(document)


async def _pages(
    session: AsyncSession, scope: Scope
) -> AsyncIterator[list[tuple[Project, list[Milestone], ProgressReport | None]]]:
    after: uuid.UUID | None = None
    while found := await repository.projects_page(session, scope, after=after, limit=PAGE):
        ids = [p.id for p in found]
        milestones = await repository.milestones_of_many(session, ids)
        latest = await repository.latest_reports(session, ids)
        yield [(p, milestones[p.id], latest.get(p.id)) for p in found]
        after = found[-1].id


async def oc4ids_package(
    session: AsyncSession, scope: Scope, *, base_url: str, uri: str, now: datetime
) -> AsyncIterator[str]:
    """The OC4IDS project package, a page of projects per chunk, from one snapshot."""
    await repository.begin_snapshot(session)
    head = {
        "uri": uri,
        "publishedDate": _time(now),
        "publisher": {"name": "Comuna"},
        "version": OC4IDS_VERSION,
    }
    yield json.dumps(head, ensure_ascii=False)[:-1] + ',"projects":['
    separator = "\n"
    async for page in _pages(session, scope):
        for project, milestones, latest in page:
            url = f"{base_url}/v1/projects/{project.id}"
            yield separator + json.dumps(oc4ids_project(project, milestones, latest, url=url), ensure_ascii=False)
            separator = ",\n"
    yield "\n]}\n"


# --- CSV ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "project_id",
    "title",
    "commune_code",
    "municipality_code",
    "state_code",
    "category",
    "status",
    "currency",
    "budget",
    "disbursed",
    "spent",
    "percent_complete",
    "milestones",
    "milestones_verified",
    "funders",
    "started_at",
    "completed_at",
    "stalled_since",
    "url",
)


def csv_values(project: Project, milestones: Sequence[Milestone], base_url: str) -> tuple[str, ...]:
    cur = project.currency
    return (
        str(project.id),
        project.title,
        project.commune_code,
        project.municipality_code or "",
        project.state_code or "",
        project.category or "",
        project.status,
        cur,
        major_units(project.budget_minor, cur),
        major_units(project.disbursed_minor, cur),
        major_units(project.spent_minor, cur),
        str(project.percent_complete),
        str(len(milestones)),
        str(sum(1 for m in milestones if m.status in ("verified", "funded"))),
        "; ".join(f"{f['source']} {major_units(int(f['amount_minor']), cur)}" for f in project.funders),
        _time(project.started_at) or "",
        _time(project.completed_at) or "",
        _time(project.stalled_since) or "",
        f"{base_url}/v1/projects/{project.id}",
    )


async def csv_document(session: AsyncSession, scope: Scope, *, base_url: str) -> AsyncIterator[str]:
    """A header line, then one row per project. Starts with a byte-order mark so that a
    spreadsheet opens it as UTF-8 (accented names stay readable); amounts in major units."""
    await repository.begin_snapshot(session)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield "\ufeff" + buffer.getvalue()
    async for page in _pages(session, scope):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(csv_values(p, m, base_url) for p, m, _ in page)
        yield buffer.getvalue()
