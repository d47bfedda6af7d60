"""A project's execution under oversight, with the real services it depends on: identity (who
may act where), funding (the ledger that reserves, pays and is asked before every expenditure)
and projects, over real PostgreSQL, NATS JetStream and gRPC.

The path: a certified result -> funding's allocation -> a planned project (its category from
the candidate's event) -> the plan edited (funding re-reserves the tranches) -> started ->
each milestone reported by a spokesperson and verified by someone else (funding pays) ->
spending within what was disbursed, with receipts -> completed. Around it: change requests,
cancellation, stalls on the service's clock, evidence files, and residents' oversight reports.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from sqlalchemy import select

import comuna_funding
import comuna_projects
from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna.projects.v1 import events_pb2 as project_events
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.service import SPEC as FUNDING
from comuna_funding.settings import Settings as FundingSettings
from comuna_funding.storage.models import Tranche
from comuna_platform.auth.roles import Role
from comuna_platform.clock import ManualClock
from comuna_platform.events.streams import connect, ensure_stream
from comuna_platform.events.tables import outbox_table
from comuna_projects.domain.stalls import StallDetector
from comuna_projects.service import SPEC as PROJECTS
from comuna_projects.settings import Settings as ProjectsSettings
from comuna_projects.storage.evidence_store import S3Location, s3_client
from tests.funding.helpers import publish
from tests.support.grpc_server import grpc_server
from tests.support.identity import Identity, person, running_identity, subject_of
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

pytestmark = pytest.mark.asyncio(loop_scope="session")

COMMUNE, OTHER = "VE.01.01.C0001", "VE.01.01.C0002"
COUNCIL, OTHER_COUNCIL = f"{COMMUNE}.CC01", f"{OTHER}.CC01"
TERRITORIES = [
    ("VE", "Venezuela", "country", None),
    ("VE.01", "Lara", "state", "VE"),
    ("VE.01.01", "Iribarren", "municipality", "VE.01"),
    (COMMUNE, "Comuna Uno", "commune", "VE.01.01"),
    (COUNCIL, "Consejo Uno", "communal_council", COMMUNE),
    (OTHER, "Comuna Dos", "commune", "VE.01.01"),
    (OTHER_COUNCIL, "Consejo Dos", "communal_council", OTHER),
]
GRANT = 1_000_000  # funding's default grant: 10,000.00 USD
WAIT = 20.0
# A PNG's signature and a little more: what the content check recognises as image/png.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)
MAX_EVIDENCE = 4096
T = TypeVar("T")


@dataclass
class World:
    identity: Identity
    funding: RunningService
    projects: RunningService
    js: JetStreamContext
    issuer: TestIssuer
    clock: ManualClock

    def as_(self, role: Role, code: str = COMMUNE) -> dict[str, str]:
        return person(self.issuer, subject_of(role, code))

    @property
    def spokesperson(self) -> dict[str, str]:
        return self.as_(Role.SPOKESPERSON)

    @property
    def overseer(self) -> dict[str, str]:
        return self.as_(Role.OVERSEER)

    @property
    def client(self) -> Any:
        return self.projects.client


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer, comuna_scratch_dir: Path
) -> AsyncIterator[World]:
    suffix = uuid.uuid4().hex[:10]
    nc = await connect(embedded_nats.url, name="test-consultations")
    js = nc.jetstream()
    await ensure_stream(js, "consultations")
    clock = ManualClock(datetime.now(UTC))
    funding_db = fresh_database(
        embedded_postgres, f"exec_funding_{suffix}", Path(comuna_funding.__file__).parent / "migrations"
    )
    projects_db = fresh_database(
        embedded_postgres, f"exec_projects_{suffix}", Path(comuna_projects.__file__).parent / "migrations"
    )
    try:
        async with running_identity(embedded_postgres, embedded_nats, issuer, suffix, TERRITORIES) as identity:
            for code in (COMMUNE, OTHER):
                for role in (Role.SPOKESPERSON, Role.OVERSEER):
                    await identity.grant(subject_of(role, code), role, code)
            for role in (Role.OPERATOR, Role.AUDITOR):
                await identity.grant(subject_of(role, "VE"), role, "VE")
            for council in (COUNCIL, OTHER_COUNCIL):
                await identity.grant(subject_of(Role.RESIDENT, council), Role.RESIDENT, council)
            async with (
                running_service(
                    FUNDING,
                    FundingSettings,
                    database_url=funding_db,
                    nats_url=embedded_nats.url,
                    issuer=issuer,
                    identity_grpc_target=identity.grpc_target,
                    service_client_secret=issuer.client_secrets["svc-funding"],
                ) as funding,
                grpc_server(FUNDING, funding) as funding_target,
                running_service(
                    PROJECTS,
                    ProjectsSettings,
                    database_url=projects_db,
                    nats_url=embedded_nats.url,
                    issuer=issuer,
                    identity_grpc_target=identity.grpc_target,
                    funding_grpc_target=funding_target,
                    evidence_dir=comuna_scratch_dir / f"evidence-{suffix}",
                    evidence_max_bytes=MAX_EVIDENCE,
                    # The detector is driven by the tests, on the service's manual clock.
                    stall_check_seconds=3600,
                ) as projects,
            ):
                projects.runtime.clock = clock
                yield World(identity, funding, projects, js, issuer, clock)
    finally:
        await nc.drain()


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        found = await probe()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def certified_project(w: World, *, category: str | None = "water", commune: str = COMMUNE) -> dict[str, Any]:
    """A commune's result certified as consultations would announce it; the project it funds."""
    consultation_id, candidate = str(uuid.uuid4()), str(uuid.uuid4())
    if category is not None:
        recorded = consultation_events.CandidateRecorded(
            consultation_id=consultation_id, candidate_id=candidate, title="Tanque de agua", category=category
        )
        await publish(w.js, "consultations.candidate.recorded", recorded)
    result = consultation_events.CommuneResultCertified(
        consultation_id=consultation_id,
        consultation_code="2027-Q1",
        result=consultation_events.CommuneResult(
            commune_id=str(uuid.uuid4()),
            commune_code=commune,
            commune_name="Comuna",
            ballots=10,
            winner_candidate_id=candidate,
            candidates=[
                consultation_events.CandidateResult(candidate_id=candidate, title="Tanque de agua", votes=10, rank=1)
            ],
        ),
    )
    await publish(w.js, "consultations.commune_result.certified", result)

    async def listed() -> dict[str, Any] | None:
        page = (await w.client.get("/v1/projects", params={"consultation_id": consultation_id})).json()
        return page["items"][0] if page["items"] else None

    project = await eventually(listed, "the project of the certified result")
    return await detail(w, project["id"])


async def detail(w: World, project_id: str) -> dict[str, Any]:
    response = await w.client.get(f"/v1/projects/{project_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def tranches(w: World, project_id: str) -> dict[str, str]:
    """milestone id -> status of its tranche in funding's ledger."""
    async with w.funding.runtime.db.transaction() as session:
        rows = await session.execute(
            select(Tranche.milestone_id, Tranche.status).where(Tranche.project_id == uuid.UUID(project_id))
        )
        return {str(m): str(s) for m, s in rows}


async def staged(w: World, subject: str, project_id: str) -> list[bytes]:
    async with w.projects.runtime.db.transaction() as session:
        rows = await session.execute(
            select(outbox_table.c.payload)
            .where(outbox_table.c.subject == subject, outbox_table.c.aggregate_id == project_id)
            .order_by(outbox_table.c.seq)
        )
        return [row[0] for row in rows]


async def post(w: World, path: str, headers: dict[str, str], body: Any = None, *, status: int = 200) -> Any:
    response = await w.client.post(path, json=body, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


async def start(w: World, project: dict[str, Any]) -> dict[str, Any]:
    return await post(w, f"/v1/projects/{project['id']}:start", w.spokesperson, {"spokespeople": ["Ana Rivas"]})  # type: ignore[no-any-return]


async def report_and_verify(w: World, project: dict[str, Any], milestone: dict[str, Any]) -> None:
    base = f"/v1/projects/{project['id']}/milestones/{milestone['id']}"
    await post(w, f"{base}:report", w.spokesperson, {"note": "Listo, ver fotos"})
    await post(w, f"{base}:verify", w.overseer, {"note": "Comprobado en sitio"})


async def paid(w: World, project_id: str, amount: int) -> dict[str, Any]:
    async def enough() -> dict[str, Any] | None:
        found = await detail(w, project_id)
        return found if found["disbursed_minor"] >= amount else None

    return await eventually(enough, f"{amount} disbursed to project {project_id}")


async def upload(w: World, data: bytes = PNG, headers: dict[str, str] | None = None, *, status: int = 201) -> Any:
    response = await w.client.post("/v1/evidence:upload", content=data, headers=headers or w.spokesperson)
    assert response.status_code == status, response.text
    return response.json()


def plan(*shares: int, start: date | None = None) -> list[dict[str, Any]]:
    first = start or date.today()
    return [
        {"title": f"Etapa {n}", "due_on": (first + timedelta(days=30 * n)).isoformat(), "share_minor": share}
        for n, share in enumerate(shares, start=1)
    ]


def spending(amount: int, receipt: str, **overrides: Any) -> dict[str, Any]:
    return {
        "amount_minor": amount,
        "currency": "USD",
        "spent_on": date.today().isoformat(),
        "supplier": "Ferretería El Tornillo",
        "description": "Cemento y cabillas",
        "receipt_sha256": receipt,
        **overrides,
    }


# --- the whole path -----------------------------------------------------------------------------


async def test_a_project_from_its_plan_to_its_completion(world: World) -> None:
    w = world
    project = await certified_project(w)
    pid = project["id"]
    assert (project["status"], project["category"], project["budget_minor"]) == ("planned", "water", GRANT)
    assert project["funders"] == [{"source": "national", "amount_minor": GRANT}]
    first_plan = [m["id"] for m in project["milestones"]]
    await eventually(lambda: _all_reserved(w, pid, first_plan), "funding reserving the first plan's tranches")

    # Planned: the spokesperson replaces the plan; funding voids the old tranches, reserves the new.
    edited = await w.client.put(
        f"/v1/projects/{pid}/plan",
        json={"milestones": plan(600_000, 400_000), "reason": "Dos etapas"},
        headers=w.spokesperson,
    )
    assert edited.status_code == 200, edited.text
    milestones = edited.json()["milestones"]
    assert [(m["title"], m["tranche_minor"]) for m in milestones] == [("Etapa 1", 600_000), ("Etapa 2", 400_000)]
    assert not {m["id"] for m in milestones} & set(first_plan)
    await eventually(lambda: _all_reserved(w, pid, [m["id"] for m in milestones]), "the new plan's tranches")
    assert {s for m, s in (await tranches(w, pid)).items() if m in first_plan} == {"voided"}
    # A plan that does not add up to the budget is refused whole.
    bad = await w.client.put(
        f"/v1/projects/{pid}/plan", json={"milestones": plan(600_000, 1), "reason": "x"}, headers=w.spokesperson
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "plan_shares_mismatch")

    started = await start(w, project)
    assert (started["status"], started["spokespeople"]) == ("in_execution", ["Ana Rivas"])
    frozen = await w.client.put(
        f"/v1/projects/{pid}/plan", json={"milestones": plan(500_000, 500_000), "reason": "x"}, headers=w.spokesperson
    )
    assert (frozen.status_code, frozen.json()["code"]) == (409, "plan_frozen")

    # Four eyes: the spokesperson reports; a spokesperson cannot verify; the overseer does.
    first, second = milestones
    base = f"/v1/projects/{pid}/milestones/{first['id']}"
    await post(w, f"{base}:report", w.spokesperson, {"note": "Fundaciones listas"})
    refused = await w.client.post(f"{base}:verify", json={"note": "yo mismo"}, headers=w.spokesperson)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_role")
    await post(w, f"{base}:verify", w.overseer, {"note": "Comprobado"})
    await paid(w, pid, 600_000)

    # Spending: never past what funding disbursed, each with a receipt that was uploaded.
    receipt = (await upload(w))["sha256"]
    over = await w.client.post(
        f"/v1/projects/{pid}/expenditures", json=spending(600_001, receipt), headers=w.spokesperson
    )
    assert (over.status_code, over.json()["code"]) == (409, "exceeds_disbursed")
    unknown = await w.client.post(
        f"/v1/projects/{pid}/expenditures", json=spending(1, "0" * 64), headers=w.spokesperson
    )
    assert (unknown.status_code, unknown.json()["code"]) == (422, "evidence_not_found")
    await post(w, f"/v1/projects/{pid}/expenditures", w.spokesperson, spending(550_000, receipt), status=201)

    not_yet = await w.client.post(f"/v1/projects/{pid}:complete", headers=w.spokesperson)
    assert (not_yet.status_code, not_yet.json()["code"]) == (409, "project_not_completable")
    assert "milestone 2 is not verified" in not_yet.json()["detail"]

    await report_and_verify(w, project, second)
    await paid(w, pid, GRANT)
    unspent = await w.client.post(f"/v1/projects/{pid}:complete", headers=w.spokesperson)
    assert (unspent.status_code, unspent.json()["code"]) == (409, "project_not_completable")
    assert "not accounted for by expenditures" in unspent.json()["detail"]
    await post(w, f"/v1/projects/{pid}/expenditures", w.spokesperson, spending(450_000, receipt), status=201)
    done = await post(w, f"/v1/projects/{pid}:complete", w.spokesperson)
    assert (done["status"], done["spent_minor"], done["disbursed_minor"]) == ("completed", GRANT, GRANT)
    assert {m["status"] for m in done["milestones"]} == {"funded"}

    spent = (await w.client.get(f"/v1/projects/{pid}/expenditures")).json()["items"]
    assert [e["amount_minor"] for e in spent] == [550_000, 450_000] and {e["receipt_sha256"] for e in spent} == {
        receipt
    }
    history = (await w.client.get(f"/v1/projects/{pid}/plan-revisions")).json()["items"]
    assert [(r["revision"], len(r["milestones"])) for r in history] == [(1, 3), (2, 2)]
    for subject in (
        "projects.project.started",
        "projects.plan.changed",
        "projects.project.completed",
    ):
        assert len(await staged(w, subject, pid)) == 1, subject
    assert len(await staged(w, "projects.milestone.reported", pid)) == 2
    assert len(await staged(w, "projects.expenditure.recorded", pid)) == 2
    completed = project_events.ProjectCompleted.FromString((await staged(w, "projects.project.completed", pid))[0])
    assert completed.spent.amount_minor == GRANT


async def _all_reserved(w: World, project_id: str, milestone_ids: list[str]) -> bool:
    found = await tranches(w, project_id)
    return all(found.get(m) == "reserved" for m in milestone_ids)


# --- change requests ---------------------------------------------------------------------------


async def test_a_running_project_changes_its_plan_through_a_request_the_committee_decides(world: World) -> None:
    w = world
    project = await certified_project(w)
    pid = project["id"]
    await start(w, project)
    first = project["milestones"][0]
    await report_and_verify(w, project, first)
    kept = {"title": first["title"], "due_on": first["due_on"], "share_minor": first["tranche_minor"]}
    rest = GRANT - first["tranche_minor"]
    later = date.fromisoformat(first["due_on"]) + timedelta(days=1)
    proposal = [kept, *plan(rest // 2, rest - rest // 2, start=later)]

    # The attested first milestone cannot change.
    moved = [{**kept, "share_minor": kept["share_minor"] - 1}, *plan(rest // 2, rest - rest // 2 + 1, start=later)]
    refused = await w.client.post(
        f"/v1/projects/{pid}/change-requests", json={"milestones": moved, "reason": "x"}, headers=w.spokesperson
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "milestone_attested")

    request = await post(
        w,
        f"/v1/projects/{pid}/change-requests",
        w.spokesperson,
        {"milestones": proposal, "reason": "Más etapas"},
        status=201,
    )
    assert request["state"] == "open"
    second = await w.client.post(
        f"/v1/projects/{pid}/change-requests", json={"milestones": proposal, "reason": "otra"}, headers=w.spokesperson
    )
    assert (second.status_code, second.json()["code"]) == (409, "change_request_open")

    # The operator proposes nothing here; as an overseer of the request they may decide it, but
    # nobody decides their own: the spokesperson holds no overseer role, so the committee does.
    url = f"/v1/projects/{pid}/change-requests/{request['id']}"
    by_proposer = await w.client.post(f"{url}:approve", json={"note": "sí"}, headers=w.spokesperson)
    assert (by_proposer.status_code, by_proposer.json()["code"]) == (403, "forbidden_role")
    approved = await post(w, f"{url}:approve", w.overseer, {"note": "Aprobado en asamblea"})
    assert (approved["state"], approved["decided_by"]) == ("approved", subject_of(Role.OVERSEER, COMMUNE))
    again = await w.client.post(f"{url}:reject", json={"note": "no"}, headers=w.overseer)
    assert (again.status_code, again.json()["code"]) == (409, "change_request_closed")

    after = await detail(w, pid)
    assert after["plan_revision"] == 2
    assert after["milestones"][0]["id"] == first["id"]  # the attested one is the same milestone
    assert [m["tranche_minor"] for m in after["milestones"]] == [first["tranche_minor"], rest // 2, rest - rest // 2]
    new_ids = [m["id"] for m in after["milestones"][1:]]
    await eventually(lambda: _all_reserved(w, pid, new_ids), "funding reserving the changed plan's tranches")
    old_ids = {m["id"] for m in project["milestones"][1:]}
    assert {s for m, s in (await tranches(w, pid)).items() if m in old_ids} == {"voided"}
    # The new milestones are paid from their own reservations.
    await report_and_verify(w, project, after["milestones"][1])
    await eventually(lambda: _tranche_is(w, pid, new_ids[0], "posted"), "the new milestone's tranche paid")
    requests = (await w.client.get(f"/v1/projects/{pid}/change-requests")).json()["items"]
    assert [r["state"] for r in requests] == ["approved"]


async def _tranche_is(w: World, project_id: str, milestone_id: str, status: str) -> bool:
    return (await tranches(w, project_id)).get(milestone_id) == status


async def test_the_operator_may_not_verify_what_they_reported(world: World) -> None:
    w = world
    project = await certified_project(w, category=None)
    assert project["category"] is None
    await start(w, project)
    operator = w.as_(Role.OPERATOR, "VE")
    base = f"/v1/projects/{project['id']}/milestones/{project['milestones'][0]['id']}"
    await post(w, f"{base}:report", operator, {"note": "hecho"})
    own = await w.client.post(f"{base}:verify", json={"note": "visto"}, headers=operator)
    assert (own.status_code, own.json()["code"]) == (403, "own_milestone")
    assert (await detail(w, project["id"]))["milestones"][0]["status"] == "reported"


# --- cancellation ------------------------------------------------------------------------------


async def test_a_cancelled_project_returns_its_unpaid_money_and_takes_nothing_more(world: World) -> None:
    w = world
    project = await certified_project(w)
    pid = project["id"]
    await start(w, project)
    await report_and_verify(w, project, project["milestones"][0])
    await paid(w, pid, project["milestones"][0]["tranche_minor"])
    cancelled = await post(w, f"/v1/projects/{pid}:cancel", w.spokesperson, {"reason": "El terreno no es apto"})
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "El terreno no es apto")
    unpaid = {m["id"] for m in project["milestones"][1:]}

    async def voided() -> bool:
        found = await tranches(w, pid)
        return all(found.get(m) == "voided" for m in unpaid)

    await eventually(voided, "funding voiding the unpaid tranches")
    late = await w.client.post(
        f"/v1/projects/{pid}/milestones/{project['milestones'][1]['id']}:report",
        json={"note": "x"},
        headers=w.spokesperson,
    )
    assert (late.status_code, late.json()["code"]) == (409, "project_not_under_way")
    again = await w.client.post(f"/v1/projects/{pid}:cancel", json={"reason": "otra vez"}, headers=w.spokesperson)
    assert (again.status_code, again.json()["code"]) == (409, "transition_not_allowed")


# --- stalls ------------------------------------------------------------------------------------


async def test_a_quiet_or_late_project_is_flagged_stalled_until_the_next_progress_report(world: World) -> None:
    w = world
    project = await certified_project(w)
    pid = project["id"]
    await start(w, project)
    settings = w.projects.runtime.settings
    assert isinstance(settings, ProjectsSettings)
    detector = StallDetector(w.projects.runtime.db, settings.stall_policy, every=3600, now=w.clock.now)
    await detector.check_once()
    assert (await detail(w, pid))["status"] == "in_execution"
    w.clock.advance(timedelta(days=31))
    try:
        await detector.check_once()
        stalled = await detail(w, pid)
        assert stalled["status"] == "stalled"
        assert any(r.startswith("no progress report for 31 days") for r in stalled["stall_reasons"])
        assert "milestone 1 is overdue" in stalled["stall_reasons"]
        event = project_events.ProjectStalled.FromString((await staged(w, "projects.project.stalled", pid))[0])
        assert list(event.reasons) == stalled["stall_reasons"]
        # Flagged once: a second pass changes nothing.
        await detector.check_once()
        assert len(await staged(w, "projects.project.stalled", pid)) == 1

        photo = (await upload(w, PNG + b"stall"))["sha256"]
        report = await post(
            w,
            f"/v1/projects/{pid}/progress-reports",
            w.spokesperson,
            {"percent_complete": 35, "text": "Retomamos la obra", "evidence": [photo]},
            status=201,
        )
        assert report["evidence"] == [photo]
        resumed = await detail(w, pid)
        assert (resumed["status"], resumed["stall_reasons"], resumed["percent_complete"]) == ("in_execution", [], 35)
        assert len(await staged(w, "projects.project.resumed", pid)) == 1
        # The report acknowledged the overdue milestone: quiet again only after another 30 days.
        await detector.check_once()
        assert (await detail(w, pid))["status"] == "in_execution"
        listed = (await w.client.get(f"/v1/projects/{pid}/progress-reports")).json()["items"]
        assert [(r["percent_complete"], r["evidence"]) for r in listed] == [(35, [photo])]
    finally:
        w.clock.set(datetime.now(UTC))


# --- evidence ----------------------------------------------------------------------------------


async def test_evidence_is_checked_on_its_content_stored_once_and_served_with_its_hash(world: World) -> None:
    w = world
    data = PNG + uuid.uuid4().bytes
    first = await upload(w, data)
    again = await upload(w, data, w.overseer)
    assert (first["created"], again["created"]) == (True, False)
    assert first["sha256"] == again["sha256"] and first["media_type"] == "image/png"
    served = await w.client.get(first["url"])
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/png"
    assert served.headers["etag"] == f'"sha256:{first["sha256"]}"'
    assert "immutable" in served.headers["cache-control"]

    named_like_a_photo = await w.client.post(
        "/v1/evidence:upload", content=b"#!/bin/sh\nrm -rf /\n", headers={**w.spokesperson, "content-type": "image/png"}
    )
    assert (named_like_a_photo.status_code, named_like_a_photo.json()["code"]) == (422, "evidence_type_not_allowed")
    too_big = await w.client.post("/v1/evidence:upload", content=PNG + bytes(MAX_EVIDENCE), headers=w.spokesperson)
    assert (too_big.status_code, too_big.json()["code"]) == (413, "payload_too_large")
    empty = await w.client.post("/v1/evidence:upload", content=b"", headers=w.spokesperson)
    assert (empty.status_code, empty.json()["code"]) == (422, "evidence_empty")
    anonymous = await w.client.post("/v1/evidence:upload", content=PNG)
    assert anonymous.status_code == 401
    assert (await w.client.get(f"/v1/evidence/{'a' * 64}")).status_code == 404
    assert (await w.client.get("/v1/evidence/not-a-hash")).json()["code"] == "evidence_address_invalid"


# --- residents' oversight ----------------------------------------------------------------------


async def test_residents_report_and_the_committee_answers_in_public(world: World) -> None:
    w = world
    project = await certified_project(w)
    pid = project["id"]
    resident, outsider = w.as_(Role.RESIDENT, COUNCIL), w.as_(Role.RESIDENT, OTHER_COUNCIL)
    photo = (await upload(w, PNG + b"bache", resident))["sha256"]
    filed = await post(
        w,
        f"/v1/projects/{pid}/oversight-reports",
        resident,
        {"kind": "complaint", "text": "La obra está parada desde hace un mes", "evidence": [photo]},
        status=201,
    )
    assert (filed["state"], filed["evidence"]) == ("received", [photo]) and "filed_by" not in filed
    elsewhere = await w.client.post(
        f"/v1/projects/{pid}/oversight-reports", json={"kind": "observation", "text": "hola"}, headers=outsider
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "forbidden_territory")

    url = f"/v1/projects/{pid}/oversight-reports/{filed['id']}"
    early = await w.client.post(f"{url}:answer", json={"answer": "Ya vamos"}, headers=w.overseer)
    assert (early.status_code, early.json()["code"]) == (409, "report_transition_not_allowed")
    by_resident = await w.client.post(f"{url}:review", headers=resident)
    assert (by_resident.status_code, by_resident.json()["code"]) == (403, "forbidden_role")
    await post(w, f"{url}:review", w.overseer)
    answered = await post(w, f"{url}:answer", w.overseer, {"answer": "El contratista vuelve el lunes"})
    assert (answered["state"], answered["answer"]) == ("answered", "El contratista vuelve el lunes")
    closed = await post(w, f"{url}:close", w.overseer)
    assert closed["state"] == "closed" and closed["closed_at"] is not None

    public = (await w.client.get(f"/v1/projects/{pid}/oversight-reports")).json()["items"]
    assert [(r["state"], r["answer"]) for r in public] == [("closed", "El contratista vuelve el lunes")]
    assert "filed_by" not in public[0]
    full = await w.client.get(f"/v1/projects/{pid}/oversight-reports:full", headers=w.as_(Role.AUDITOR, "VE"))
    assert full.status_code == 200 and full.json()["items"][0]["filed_by"] == subject_of(Role.RESIDENT, COUNCIL)
    other_overseer = await w.client.get(
        f"/v1/projects/{pid}/oversight-reports:full", headers=w.as_(Role.OVERSEER, OTHER)
    )
    assert (other_overseer.status_code, other_overseer.json()["code"]) == (403, "forbidden_territory")
    events = [
        project_events.OversightReportChanged.FromString(p)
        for p in await staged(w, "projects.oversight_report.changed", pid)
    ]
    assert [e.state for e in events] == ["received", "under_review", "answered", "closed"]
    assert all(subject_of(Role.RESIDENT, COUNCIL) not in e.SerializeToString().decode("latin-1") for e in events)


# --- open data ---------------------------------------------------------------------------------


async def test_aggregates_and_exports_show_what_was_committed_paid_and_spent(world: World) -> None:
    w = world
    project = await certified_project(w, category="roads")
    pid, first = project["id"], project["milestones"][0]
    await start(w, project)
    await report_and_verify(w, project, first)
    await paid(w, pid, first["tranche_minor"])
    receipt = (await upload(w, PNG + b"open-data"))["sha256"]
    await post(w, f"/v1/projects/{pid}/expenditures", w.spokesperson, spending(12_345, receipt), status=201)
    scope = {"consultation_id": project["consultation_id"]}

    answered = await w.client.get("/v1/stats", params=scope)
    assert answered.headers["cache-control"] == "public, max-age=60"
    stats = answered.json()
    money = {
        "currency": "USD",
        "committed_minor": GRANT,
        "disbursed_minor": first["tranche_minor"],
        "spent_minor": 12_345,
        "committed": "10000.00",
        "disbursed": f"{first['tranche_minor'] // 100}.00",
        "spent": "123.45",
    }
    assert (stats["projects"], stats["money"]) == (1, [money])
    for grouping, key in (
        ("by_status", "in_execution"),
        ("by_category", "roads"),
        ("by_state", "VE.01"),
        ("by_municipality", "VE.01.01"),
    ):
        assert stats[grouping] == [{"key": key, "projects": 1, "money": [money]}], grouping
    # National: the groups add up to the whole, per currency.
    national = (await w.client.get("/v1/stats")).json()
    assert national["projects"] >= 1
    for grouping in ("by_status", "by_category", "by_state", "by_municipality"):
        assert sum(g["projects"] for g in national[grouping]) == national["projects"]
        spent = sum(m["spent_minor"] for g in national[grouping] for m in g["money"])
        assert spent == sum(m["spent_minor"] for m in national["money"])
    assert (await w.client.get("/v1/stats", params={"state_code": "ve.01"})).status_code == 422

    exported = await w.client.get("/v1/exports/projects", params=scope)
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/json"
    package = exported.json()
    assert package["version"] == "0.9" and package["publisher"] == {"name": "Comuna"}
    (oc4ids,) = package["projects"]
    assert (oc4ids["id"], oc4ids["status"], oc4ids["sector"]) == (
        f"comuna-{pid}",
        "implementation",
        ["transport", "transport.road"],
    )
    assert oc4ids["budget"]["amount"] == {"amount": 10000.0, "currency": "USD", "amount_minor": GRANT}
    (by_funder,) = oc4ids["budget"]["budgetBreakdowns"]
    assert [b["sourceParty"]["name"] for b in by_funder["budgetBreakdown"]] == ["national"]
    assert {p["id"]: p["roles"] for p in oc4ids["parties"]} == {
        f"commune-{project['commune_id']}": ["publicAuthority"],
        "funder-national": ["funder"],
    }
    delivery, payment = oc4ids["milestones"][:2]
    assert (delivery["type"], delivery["status"], payment["type"], payment["status"]) == (
        "delivery",
        "met",
        "payment",
        "met",
    )
    assert [m["status"] for m in oc4ids["milestones"][2:]] == ["scheduled"] * (len(oc4ids["milestones"]) - 2)
    # The paid tranche is a transaction with the ledger's transfer id, linked to its milestone.
    allocation = (await w.funding.client.get(f"/v1/allocations/{project['allocation_id']}")).json()
    (transaction,) = oc4ids["transactions"]
    assert transaction["id"] == allocation["disbursements"][0]["transfer_id"]
    assert transaction["relatedImplementationMilestone"]["id"] == payment["id"]
    assert transaction["value"]["amount_minor"] == first["tranche_minor"]
    financial = next(m for m in oc4ids["metrics"] if m["id"] == "financialProgress")
    assert {o["id"]: o["value"]["amount"] for o in financial["observations"]} == {
        "disbursed": first["tranche_minor"] / 100,
        "spent": 123.45,
    }

    as_csv = await w.client.get("/v1/exports/projects", params={**scope, "format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert len(rows) == 1
    assert {k: rows[0][k] for k in ("project_id", "status", "category", "budget", "spent", "milestones_verified")} == {
        "project_id": pid,
        "status": "in_execution",
        "category": "roads",
        "budget": "10000.00",
        "spent": "123.45",
        "milestones_verified": "1",
    }
    refused = await w.client.get("/v1/exports/projects", params={"format": "xml"})
    assert refused.status_code == 422


# --- spending under contention and retries ------------------------------------------------------


async def test_concurrent_expenditures_never_spend_more_than_was_disbursed(world: World) -> None:
    w = world
    project = await certified_project(w)
    pid, first = project["id"], project["milestones"][0]
    await start(w, project)
    await report_and_verify(w, project, first)
    disbursed = (await paid(w, pid, first["tranche_minor"]))["disbursed_minor"]
    receipt = (await upload(w, PNG + b"race"))["sha256"]
    share = disbursed * 3 // 10  # three fit, the fourth would not
    responses = await asyncio.gather(
        *[
            w.client.post(f"/v1/projects/{pid}/expenditures", json=spending(share, receipt), headers=w.spokesperson)
            for _ in range(8)
        ]
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [409] * 5, codes
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"exceeds_disbursed"}
    after = await detail(w, pid)
    assert after["spent_minor"] == 3 * share <= after["disbursed_minor"]
    assert len(await staged(w, "projects.expenditure.recorded", pid)) == 3


async def test_a_retried_expenditure_is_recorded_once(world: World) -> None:
    w = world
    project = await certified_project(w)
    pid, first = project["id"], project["milestones"][0]
    await start(w, project)
    await report_and_verify(w, project, first)
    await paid(w, pid, first["tranche_minor"])
    receipt = (await upload(w, PNG + b"retry"))["sha256"]
    body = spending(1_000, receipt, expenditure_id=str(uuid.uuid4()))
    copies = await asyncio.gather(
        *[w.client.post(f"/v1/projects/{pid}/expenditures", json=body, headers=w.spokesperson) for _ in range(3)]
    )
    assert [r.status_code for r in copies] == [201] * 3
    assert {r.json()["id"] for r in copies} == {body["expenditure_id"]}
    assert (await detail(w, pid))["spent_minor"] == 1_000
    other = await w.client.post(
        f"/v1/projects/{pid}/expenditures", json={**body, "amount_minor": 2_000}, headers=w.spokesperson
    )
    assert (other.status_code, other.json()["code"]) == (409, "expenditure_id_reused")
    assert (await detail(w, pid))["spent_minor"] == 1_000
    assert len(await staged(w, "projects.expenditure.recorded", pid)) == 1


# --- evidence in S3-compatible storage ----------------------------------------------------------


async def test_the_service_keeps_evidence_in_an_s3_bucket_by_settings(
    world: World, embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, s3_location: S3Location
) -> None:
    w = world
    url = fresh_database(
        embedded_postgres, f"exec_s3_{uuid.uuid4().hex[:8]}", Path(comuna_projects.__file__).parent / "migrations"
    )
    async with running_service(
        PROJECTS,
        ProjectsSettings,
        database_url=url,
        nats_url=embedded_nats.url,
        issuer=w.issuer,
        workers=False,
        identity_grpc_target=w.identity.grpc_target,
        evidence_backend="s3",
        evidence_s3_endpoint=s3_location.endpoint_url,
        evidence_s3_bucket=s3_location.bucket,
        evidence_s3_prefix="comuna/",
        evidence_s3_access_key_id=s3_location.access_key,
        evidence_s3_secret_access_key=s3_location.secret_key,
    ) as service:
        data = PNG + b"s3"
        first = await service.client.post("/v1/evidence:upload", content=data, headers=w.spokesperson)
        again = await service.client.post("/v1/evidence:upload", content=data, headers=w.spokesperson)
        assert (first.status_code, again.status_code) == (201, 201)
        sha = first.json()["sha256"]
        assert (first.json()["created"], again.json()["created"]) == (True, False)
        served = await service.client.get(f"/v1/evidence/{sha}")
        assert served.status_code == 200 and served.content == data
    # In the bucket, at its address, once.
    keys = s3_client(s3_location).list_objects_v2(Bucket=s3_location.bucket)["Contents"]
    assert [k["Key"] for k in keys] == [f"comuna/sha256/{sha[:2]}/{sha}"]


async def test_the_committee_sends_back_a_milestone_whose_work_is_not_done(world: World) -> None:
    w = world
    project = await certified_project(w)
    pid, first = project["id"], project["milestones"][0]
    await start(w, project)
    base = f"/v1/projects/{pid}/milestones/{first['id']}"
    pending = await w.client.post(f"{base}:return", json={"note": "nada"}, headers=w.overseer)
    assert (pending.status_code, pending.json()["code"]) == (409, "milestone_not_reported")
    await post(w, f"{base}:report", w.spokesperson, {"note": "Techo listo"})
    returned = await post(w, f"{base}:return", w.overseer, {"note": "Falta impermeabilizar el techo"})
    assert (returned["milestone"]["status"], returned["milestone"]["reported_by"]) == ("pending", None)
    history = (await w.client.get(f"/v1/projects/{pid}/milestone-returns")).json()["items"]
    assert [(r["milestone_id"], r["report_note"], r["note"]) for r in history] == [
        (first["id"], "Techo listo", "Falta impermeabilizar el techo")
    ]
    assert len(await staged(w, "projects.milestone.returned", pid)) == 1
    # Nobody sends back their own report; once reported again, it is verified and paid.
    operator = w.as_(Role.OPERATOR, "VE")
    await post(w, f"{base}:report", operator, {"note": "Impermeabilizado"})
    own = await w.client.post(f"{base}:return", json={"note": "no"}, headers=operator)
    assert (own.status_code, own.json()["code"]) == (403, "own_milestone")
    await post(w, f"{base}:verify", w.overseer, {"note": "Ahora sí"})
    await paid(w, pid, first["tranche_minor"])
