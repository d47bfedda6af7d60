"""The projects service end to end: real PostgreSQL, real NATS JetStream, real tokens.

Funding is played by the test: it publishes AllocationCreated / TrancheDisbursed / TrancheRejected to the
FUNDING stream exactly as the outbox relay would (CloudEvents headers). Every rejected request
is checked to have written nothing: neither milestone state nor an outbox event.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import func, select

import comuna_projects
from comuna.common.v1 import money_pb2
from comuna.funding.v1 import events_pb2 as funding_events
from comuna.projects.v1 import events_pb2 as project_events
from comuna.projects.v1 import projects_pb2, projects_pb2_grpc
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.auth.roles import Role
from comuna_platform.events.envelope import Envelope
from comuna_platform.events.streams import connect, ensure_stream
from comuna_platform.events.tables import inbox_table, outbox_table, parked_table
from comuna_platform.rpc import error_code_of
from comuna_projects.domain.rules import milestone_id_for, project_id_for
from comuna_projects.service import SPEC
from comuna_projects.settings import Settings
from comuna_projects.storage.models import Milestone, Project
from tests.support.grpc_server import grpc_server
from tests.support.identity import Identity, person, running_identity, subject_of
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

MIGRATIONS = Path(comuna_projects.__file__).parent / "migrations"
COMMUNE_CODE = "VE.01.01.C0001"
# A sibling commune whose code is a string prefix of COMMUNE_CODE, and a commune of another state.
PREFIX_COMMUNE = "VE.01.01.C000"
OTHER_COMMUNE = "VE.02.01.C1"
TERRITORIES = [
    ("VE", "Venezuela", "country", None),
    ("VE.01", "Lara", "state", "VE"),
    ("VE.01.01", "Iribarren", "municipality", "VE.01"),
    (COMMUNE_CODE, "Comuna Uno", "commune", "VE.01.01"),
    (PREFIX_COMMUNE, "Comuna Cero", "commune", "VE.01.01"),
    ("VE.02", "Zulia", "state", "VE"),
    ("VE.02.01", "Maracaibo", "municipality", "VE.02"),
    (OTHER_COMMUNE, "Comuna Zulia", "commune", "VE.02.01"),
]
ALLOCATIONS_CONSUMER = "projects-allocations"
DISBURSEMENTS_CONSUMER = "projects-disbursements"
REJECTIONS_CONSUMER = "projects-rejections"
WAIT_SECONDS = 15.0
# Spokesperson and registrar of COMMUNE_CODE: present there, but not as an overseer.
WRONG_ROLES = "spokesperson-registrar"

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Harness:
    service: RunningService
    nc: NATS
    js: JetStreamContext
    issuer: TestIssuer
    identity: Identity

    @property
    def client(self) -> Any:
        return self.service.client

    def overseer(self, territory: str = COMMUNE_CODE, **claims: Any) -> dict[str, str]:
        """The overseer of `territory` (one of the communes granted by the harness)."""
        return person(self.issuer, subject_of(Role.OVERSEER, territory), **claims)

    def spokesperson(self, territory: str = COMMUNE_CODE, **claims: Any) -> dict[str, str]:
        return person(self.issuer, subject_of(Role.SPOKESPERSON, territory), **claims)


@pytest.fixture(scope="module")
def database_url(embedded_postgres: EmbeddedPostgres) -> str:
    return fresh_database(embedded_postgres, f"projects_{uuid.uuid4().hex[:12]}", MIGRATIONS)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def harness(
    database_url: str, embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Harness]:
    nc = await connect(embedded_nats.url, name="test-funding")
    js = nc.jetstream()
    # Funding's stream, as the funding service would create it.
    await ensure_stream(js, "funding")
    try:
        async with (
            running_identity(embedded_postgres, embedded_nats, issuer, uuid.uuid4().hex[:10], TERRITORIES) as identity,
            running_service(
                SPEC,
                Settings,
                database_url=database_url,
                nats_url=embedded_nats.url,
                issuer=issuer,
                identity_grpc_target=identity.grpc_target,
            ) as service,
        ):
            for commune in (COMMUNE_CODE, PREFIX_COMMUNE, OTHER_COMMUNE):
                await identity.grant(subject_of(Role.OVERSEER, commune), Role.OVERSEER, commune)
                await identity.grant(subject_of(Role.SPOKESPERSON, commune), Role.SPOKESPERSON, commune)
            await identity.grant(subject_of(Role.OPERATOR, "VE"), Role.OPERATOR, "VE")
            await identity.grant(WRONG_ROLES, Role.SPOKESPERSON, COMMUNE_CODE)
            await identity.grant(WRONG_ROLES, Role.REGISTRAR, COMMUNE_CODE)
            yield Harness(service, nc, js, issuer, identity)
    finally:
        await nc.drain()


# --- funding, played by the test ---------------------------------------------------------------


def allocation_message(
    *, commune_code: str = COMMUNE_CODE, amount_minor: int = 1_000_000, **overrides: Any
) -> funding_events.AllocationCreated:
    fields: dict[str, Any] = {
        "allocation_id": str(uuid.uuid4()),
        "consultation_id": str(uuid.uuid4()),
        "commune_id": str(uuid.uuid4()),
        "candidate_id": str(uuid.uuid4()),
        "title": "Community water tank",
        "funding_source": "national",
        "amount": money_pb2.Money(amount_minor=amount_minor, currency="USD"),
        "transfer_id": str(uuid.uuid4()),
        "commune_code": commune_code,
    }
    fields.update(overrides)
    return funding_events.AllocationCreated(**fields)


async def publish(
    h: Harness,
    subject: str,
    message: Any,
    *,
    aggregate_id: str,
    event_id: uuid.UUID | None = None,
    nats_msg_id: str | None = None,
) -> int:
    """Publish like funding's outbox relay; returns the stream sequence."""
    envelope = Envelope(
        event_id=event_id or uuid.uuid4(),
        source="/comuna/funding",
        event_type=message.DESCRIPTOR.full_name,
        time=datetime.now(UTC),
        subject=aggregate_id,
    )
    headers = envelope.to_headers()
    if nats_msg_id is not None:
        # A different Nats-Msg-Id gets past JetStream's de-duplication, so the consumer really
        # receives the same CloudEvent (same ce-id) a second time.
        headers["Nats-Msg-Id"] = nats_msg_id
    ack = await h.js.publish(subject, message.SerializeToString(), headers=headers)
    assert not ack.duplicate
    return int(ack.seq)


async def wait_consumed(h: Harness, consumer: str, seq: int) -> None:
    """Until the durable consumer has acknowledged everything up to stream sequence `seq`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            info = await h.js.consumer_info("FUNDING", consumer)
            if info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= seq:
                return
        except NotFoundError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"consumer {consumer} did not process stream sequence {seq}")


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def open_project(h: Harness, **kwargs: Any) -> tuple[funding_events.AllocationCreated, dict[str, Any]]:
    message = allocation_message(**kwargs)
    seq = await publish(h, "funding.allocation.created", message, aggregate_id=message.allocation_id)
    await wait_consumed(h, ALLOCATIONS_CONSUMER, seq)
    response = await h.client.get(f"/v1/projects/by-allocation/{message.allocation_id}")
    assert response.status_code == 200, response.text
    return message, response.json()


async def disburse(
    h: Harness,
    project: dict[str, Any],
    milestone: dict[str, Any],
    *,
    disbursement_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    nats_msg_id: str | None = None,
) -> uuid.UUID:
    disbursement_id = disbursement_id or uuid.uuid4()
    message = funding_events.TrancheDisbursed(
        disbursement_id=str(disbursement_id),
        allocation_id=project["allocation_id"],
        project_id=project["id"],
        milestone_id=milestone["id"],
        commune_id=project["commune_id"],
        amount=money_pb2.Money(amount_minor=milestone["tranche_minor"], currency=milestone["currency"]),
        transfer_id=str(uuid.uuid4()),
    )
    seq = await publish(
        h,
        "funding.tranche.disbursed",
        message,
        aggregate_id=str(disbursement_id),
        event_id=event_id,
        nats_msg_id=nats_msg_id,
    )
    await wait_consumed(h, DISBURSEMENTS_CONSUMER, seq)
    return disbursement_id


async def reject(
    h: Harness,
    project: dict[str, Any],
    milestone: dict[str, Any],
    *,
    reason: str = "exceeds_allocation",
    event_id: uuid.UUID | None = None,
    nats_msg_id: str | None = None,
    **overrides: Any,
) -> funding_events.TrancheRejected:
    """Funding refusing the milestone's tranche, as its outbox relay would publish it."""
    fields: dict[str, Any] = {
        "disbursement_id": str(uuid.uuid4()),
        "allocation_id": project["allocation_id"],
        "project_id": project["id"],
        "milestone_id": milestone["id"],
        "commune_id": project["commune_id"],
        "amount": money_pb2.Money(amount_minor=milestone["tranche_minor"] + 1, currency=milestone["currency"]),
        "reason": reason,
        **overrides,
    }
    message = funding_events.TrancheRejected(**fields)
    seq = await publish(
        h,
        "funding.tranche.rejected",
        message,
        aggregate_id=message.disbursement_id,
        event_id=event_id,
        nats_msg_id=nats_msg_id,
    )
    await wait_consumed(h, REJECTIONS_CONSUMER, seq)
    return message


# --- reading our own state ----------------------------------------------------------------------


async def outbox(h: Harness, subject: str, aggregate_id: str) -> list[bytes]:
    async with h.service.runtime.db.transaction() as session:
        rows = await session.execute(
            select(outbox_table.c.payload)
            .where(outbox_table.c.subject == subject, outbox_table.c.aggregate_id == aggregate_id)
            .order_by(outbox_table.c.seq)
        )
        return [row[0] for row in rows]


async def snapshot(h: Harness, project_id: str) -> tuple[list[tuple[Any, ...]], int]:
    """Everything a request on this project could have written: milestone rows and outbox size."""
    async with h.service.runtime.db.transaction() as session:
        rows = await session.execute(
            select(
                Milestone.id,
                Milestone.status,
                Milestone.verified_by,
                Milestone.verified_at,
                Milestone.verification_note,
                Milestone.funded_at,
                Milestone.disbursement_id,
            )
            .where(Milestone.project_id == uuid.UUID(project_id))
            .order_by(Milestone.sequence)
        )
        events = await session.scalar(select(func.count()).select_from(outbox_table))
    return [tuple(r) for r in rows], int(events or 0)


async def published(h: Harness, subject: str, aggregate_id: str) -> list[bytes]:
    """Payloads the relay actually put on the PROJECTS stream for this aggregate."""
    found: list[bytes] = []
    seq = 1
    while True:
        try:
            msg = await h.js.get_msg("PROJECTS", seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        assert msg.seq is not None
        if (msg.headers or {}).get("ce-subject") == aggregate_id:
            assert msg.data is not None
            found.append(msg.data)
        seq = msg.seq + 1


def verify_url(project: dict[str, Any], milestone: dict[str, Any] | str) -> str:
    milestone_id = milestone if isinstance(milestone, str) else milestone["id"]
    return f"/v1/projects/{project['id']}/milestones/{milestone_id}:verify"


async def started(h: Harness, project: dict[str, Any], *, reported: int = 0) -> dict[str, Any]:
    """Start the project (its spokesperson) and report its first `reported` milestones done, so
    an overseer may verify them; returns the project as it then is."""
    response = await h.client.post(
        f"/v1/projects/{project['id']}:start", json={"spokespeople": ["María Pérez"]}, headers=h.spokesperson()
    )
    assert response.status_code == 200, response.text
    for milestone in project["milestones"][:reported]:
        response = await h.client.post(
            f"/v1/projects/{project['id']}/milestones/{milestone['id']}:report",
            json={"note": "Done, see the photos."},
            headers=h.spokesperson(),
        )
        assert response.status_code == 200, response.text
    detail: dict[str, Any] = (await h.client.get(f"/v1/projects/{project['id']}")).json()
    return detail


async def open_started(h: Harness, *, reported: int = 0, **kwargs: Any) -> dict[str, Any]:
    _, project = await open_project(h, **kwargs)
    return await started(h, project, reported=reported)


# --- allocation -> project ----------------------------------------------------------------------


async def test_allocation_opens_one_project_with_planned_milestones(harness: Harness) -> None:
    message, project = await open_project(harness, amount_minor=1_000_001)
    allocation_id = uuid.UUID(message.allocation_id)
    assert project["id"] == str(project_id_for(allocation_id))
    assert project["status"] == "planned"
    assert (project["started_at"], project["spokespeople"], project["plan_revision"]) == (None, [], 1)
    assert (project["state_code"], project["municipality_code"]) == ("VE.01", "VE.01.01")
    assert project["funders"] == [{"source": "national", "amount_minor": 1_000_001}]
    assert project["commune_code"] == COMMUNE_CODE
    assert (project["budget_minor"], project["currency"], project["disbursed_minor"]) == (1_000_001, "USD", 0)
    milestones = project["milestones"]
    assert [(m["sequence"], m["title"], m["tranche_minor"], m["status"]) for m in milestones] == [
        (1, "Start-up", 400_000, "pending"),
        (2, "Midpoint", 400_000, "pending"),
        (3, "Completion", 200_001, "pending"),
    ]
    assert [m["id"] for m in milestones] == [str(milestone_id_for(uuid.UUID(project["id"]), s)) for s in (1, 2, 3)]
    assert sum(m["tranche_minor"] for m in milestones) == 1_000_001
    assert all(m["currency"] == "USD" and m["disbursed_minor"] is None for m in milestones)

    staged = await outbox(harness, "projects.project.created", project["id"])
    assert len(staged) == 1
    created = project_events.ProjectCreated.FromString(staged[0]).project
    assert created.allocation_id == message.allocation_id
    assert created.commune_code == COMMUNE_CODE
    assert created.budget.amount_minor == 1_000_001
    assert [m.tranche.amount_minor for m in created.milestones] == [400_000, 400_000, 200_001]
    assert all(m.status == projects_pb2.MILESTONE_STATUS_PENDING for m in created.milestones)
    assert (created.stage, created.plan_revision) == ("planned", 1)
    assert [m.due_on for m in created.milestones] == [m["due_on"] for m in milestones]
    assert milestones[0]["due_on"] < milestones[1]["due_on"] < milestones[2]["due_on"]

    async def relayed() -> bool:
        return len(await published(harness, "projects.project.created", project["id"])) == 1

    await eventually(relayed)

    same = await harness.client.get(f"/v1/projects/{project['id']}")
    assert same.json() == project


async def test_redelivered_and_republished_allocation_keeps_one_project(harness: Harness) -> None:
    message = allocation_message()
    event_id = uuid.uuid4()
    first = await publish(
        harness, "funding.allocation.created", message, aggregate_id=message.allocation_id, event_id=event_id
    )
    # The same event delivered again (inbox), and a copy under a new event id (unique allocation).
    again = await publish(
        harness,
        "funding.allocation.created",
        message,
        aggregate_id=message.allocation_id,
        event_id=event_id,
        nats_msg_id=str(uuid.uuid4()),
    )
    copy = await publish(harness, "funding.allocation.created", message, aggregate_id=message.allocation_id)
    assert first < again < copy
    await wait_consumed(harness, ALLOCATIONS_CONSUMER, copy)

    allocation_id = uuid.UUID(message.allocation_id)
    async with harness.service.runtime.db.transaction() as session:
        projects = (await session.execute(select(Project).where(Project.allocation_id == allocation_id))).all()
        milestones = await session.scalar(
            select(func.count()).select_from(Milestone).where(Milestone.project_id == project_id_for(allocation_id))
        )
        handled = await session.scalar(
            select(func.count())
            .select_from(inbox_table)
            .where(inbox_table.c.consumer == ALLOCATIONS_CONSUMER, inbox_table.c.event_id == event_id)
        )
    assert len(projects) == 1
    assert milestones == 3
    assert handled == 1
    assert len(await outbox(harness, "projects.project.created", str(project_id_for(allocation_id)))) == 1


async def test_concurrent_copies_of_an_allocation_keep_one_project(harness: Harness) -> None:
    message = allocation_message()
    seqs = await asyncio.gather(
        *[publish(harness, "funding.allocation.created", message, aggregate_id=message.allocation_id) for _ in range(5)]
    )
    await wait_consumed(harness, ALLOCATIONS_CONSUMER, max(seqs))
    project_id = str(project_id_for(uuid.UUID(message.allocation_id)))
    assert len(await outbox(harness, "projects.project.created", project_id)) == 1
    listing = await harness.client.get("/v1/projects", params={"consultation_id": message.consultation_id})
    assert [p["id"] for p in listing.json()["items"]] == [project_id]


async def test_malformed_allocation_is_parked_without_blocking_the_next(harness: Harness) -> None:
    bad = allocation_message(amount_minor=0)
    event_id = uuid.uuid4()
    seq = await publish(harness, "funding.allocation.created", bad, aggregate_id=bad.allocation_id, event_id=event_id)
    _, good = await open_project(harness)
    assert good["status"] == "planned"
    missing = await harness.client.get(f"/v1/projects/by-allocation/{bad.allocation_id}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "project_not_found"
    await wait_consumed(harness, ALLOCATIONS_CONSUMER, seq)
    async with harness.service.runtime.db.transaction() as session:
        query = select(parked_table).where(parked_table.c.event_id == event_id)
        parked = (await session.execute(query)).mappings().all()
    assert [(p["consumer"], p["stream_seq"], p["reason"]) for p in parked] == [
        (ALLOCATIONS_CONSUMER, seq, "unprocessable")
    ]
    assert parked[0]["error"] == "MalformedEvent: allocation amount must be positive"


async def test_an_allocation_from_anyone_but_funding_is_parked_and_opens_no_project(harness: Harness) -> None:
    forged = allocation_message()
    event_id = uuid.uuid4()
    envelope = Envelope(
        event_id=event_id,
        source="/comuna/consultations",
        event_type=forged.DESCRIPTOR.full_name,
        time=datetime.now(UTC),
        subject=forged.allocation_id,
    )
    ack = await harness.js.publish(
        "funding.allocation.created", forged.SerializeToString(), headers=envelope.to_headers()
    )
    await wait_consumed(harness, ALLOCATIONS_CONSUMER, ack.seq)
    async with harness.service.runtime.db.transaction() as session:
        reasons = (
            await session.execute(select(parked_table.c.reason).where(parked_table.c.event_id == event_id))
        ).scalars()
        assert list(reasons) == ["source_mismatch"]
    missing = await harness.client.get(f"/v1/projects/by-allocation/{forged.allocation_id}")
    assert missing.status_code == 404


# --- public reads -------------------------------------------------------------------------------


async def test_list_filters_and_pages(harness: Harness) -> None:
    consultation = str(uuid.uuid4())
    commune_a, commune_b = str(uuid.uuid4()), str(uuid.uuid4())
    opened = [
        await open_project(harness, consultation_id=consultation, commune_id=commune_a),
        await open_project(harness, consultation_id=consultation, commune_id=commune_b),
        await open_project(harness, consultation_id=str(uuid.uuid4()), commune_id=commune_a),
    ]
    ids = [p["id"] for _, p in opened]

    by_consultation = (await harness.client.get("/v1/projects", params={"consultation_id": consultation})).json()
    assert sorted(p["id"] for p in by_consultation["items"]) == sorted(ids[:2])
    by_commune = (await harness.client.get("/v1/projects", params={"commune_id": commune_a})).json()
    assert sorted(p["id"] for p in by_commune["items"]) == sorted([ids[0], ids[2]])
    both = (
        await harness.client.get("/v1/projects", params={"consultation_id": consultation, "commune_id": commune_b})
    ).json()
    assert [p["id"] for p in both["items"]] == [ids[1]]
    assert (both["items"][0]["budget_minor"], both["items"][0]["currency"]) == (1_000_000, "USD")

    first = (await harness.client.get("/v1/projects", params={"consultation_id": consultation, "limit": 1})).json()
    assert len(first["items"]) == 1 and first["next_page_token"] is not None
    second = (
        await harness.client.get(
            "/v1/projects",
            params={"consultation_id": consultation, "limit": 1, "page_token": first["next_page_token"]},
        )
    ).json()
    assert {first["items"][0]["id"], second["items"][0]["id"]} == set(ids[:2])
    assert second["next_page_token"] is None  # the last page says so: no empty page after it
    for forged in ("%00", "Zm9v", first["next_page_token"][:-2]):
        refused = await harness.client.get(f"/v1/projects?page_token={forged}")
        # A NUL never reaches the page decoder: the platform's input check refuses it first.
        expected = "validation_error" if forged == "%00" else "invalid_page_token"
        assert refused.status_code == 422 and refused.json()["code"] == expected, refused.text

    assert (await harness.client.get("/v1/projects", params={"commune_id": "nope"})).status_code == 422
    assert (await harness.client.get("/v1/projects", params={"limit": 0})).status_code == 422


async def test_unknown_and_malformed_ids_on_reads(harness: Harness) -> None:
    for path in (f"/v1/projects/{uuid.uuid4()}", f"/v1/projects/by-allocation/{uuid.uuid4()}"):
        response = await harness.client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await harness.client.get("/v1/projects/not-a-uuid")).status_code == 422


# --- verification -------------------------------------------------------------------------------


async def test_verify_in_sequence_emits_milestone_verified(harness: Harness) -> None:
    project = await open_started(harness, reported=2)
    first, second = project["milestones"][:2]
    subject = str(uuid.uuid4())
    await harness.identity.grant(subject, Role.OVERSEER, COMMUNE_CODE)

    response = await harness.client.post(
        verify_url(project, first), json={"note": "  Foundations poured.  "}, headers=person(harness.issuer, subject)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["milestone"]["status"] == "verified"
    assert body["milestone"]["verified_by"] == subject
    assert body["milestone"]["verification_note"] == "Foundations poured."

    staged = await outbox(harness, "projects.milestone.verified", project["id"])
    assert len(staged) == 1
    event = project_events.MilestoneVerified.FromString(staged[0])
    assert (event.project_id, event.milestone_id, event.allocation_id, event.commune_id, event.verified_by) == (
        project["id"],
        first["id"],
        project["allocation_id"],
        project["commune_id"],
        subject,
    )
    assert (event.tranche.amount_minor, event.tranche.currency) == (400_000, "USD")

    # An operator with national scope may verify too.
    operator = person(harness.issuer, subject_of(Role.OPERATOR, "VE"))
    response = await harness.client.post(verify_url(project, second), json={"note": "Walls up."}, headers=operator)
    assert response.status_code == 200, response.text

    detail = (await harness.client.get(f"/v1/projects/{project['id']}")).json()
    assert [m["status"] for m in detail["milestones"]] == ["verified", "verified", "pending"]
    assert detail["milestones"][0]["reported_by"] == subject_of(Role.SPOKESPERSON, COMMUNE_CODE)

    async def relayed() -> bool:
        return len(await published(harness, "projects.milestone.verified", project["id"])) == 2

    await eventually(relayed)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong_role", 403, "forbidden_role"),
        ("no_role", 403, "forbidden_role"),
        ("other_territory", 403, "forbidden_territory"),
        ("sibling_prefix", 403, "forbidden_territory"),
        ("expired", 401, "token_expired"),
        ("no_token", 401, "token_missing"),
        ("foreign_issuer", 401, None),
        ("unknown_project", 404, "project_not_found"),
        ("unknown_milestone", 404, "milestone_not_found"),
        ("milestone_of_other_project", 404, "milestone_not_found"),
        ("empty_note", 422, "validation_error"),
        ("blank_note", 422, "validation_error"),
        ("long_note", 422, "validation_error"),
        ("no_body", 422, "validation_error"),
        ("extra_field", 422, "validation_error"),
        ("note_not_string", 422, "validation_error"),
        ("malformed_milestone_id", 422, "validation_error"),
        ("out_of_order", 409, "milestone_out_of_order"),
        ("not_reported", 409, "milestone_not_reported"),
        ("own_report", 403, "own_milestone"),
        ("not_started", 409, "project_not_under_way"),
    ],
)
async def test_rejected_verifications_write_nothing(harness: Harness, case: str, status: int, code: str | None) -> None:
    project = await open_started(harness, reported=2)
    _, other = await open_project(harness)
    milestone = project["milestones"][0]
    url = verify_url(project, milestone)
    body: Any = {"note": "Checked on site."}
    headers = harness.overseer()
    if case == "wrong_role":
        headers = person(harness.issuer, WRONG_ROLES)
    elif case == "no_role":
        # No assignment at all, whatever the token claims.
        headers = harness.issuer.headers(
            subject="nobody", realm_access={"roles": ["overseer"]}, comuna_territories=["VE"]
        )
    elif case == "other_territory":
        headers = harness.overseer(OTHER_COMMUNE)
    elif case == "sibling_prefix":
        headers = harness.overseer(PREFIX_COMMUNE)  # a string prefix, not a parent territory
    elif case == "expired":
        headers = harness.overseer(ttl=-300)
    elif case == "no_token":
        headers = {}
    elif case == "foreign_issuer":
        headers = harness.overseer(iss="http://elsewhere/realms/comuna")
    elif case == "unknown_project":
        url = f"/v1/projects/{uuid.uuid4()}/milestones/{milestone['id']}:verify"
    elif case == "unknown_milestone":
        url = verify_url(project, str(uuid.uuid4()))
    elif case == "milestone_of_other_project":
        url = verify_url(project, other["milestones"][0])
    elif case == "empty_note":
        body = {"note": ""}
    elif case == "blank_note":
        body = {"note": "   "}
    elif case == "long_note":
        body = {"note": "x" * 2001}
    elif case == "no_body":
        body = None
    elif case == "extra_field":
        body = {"note": "ok", "verified_by": "someone-else"}
    elif case == "note_not_string":
        body = {"note": 42}
    elif case == "malformed_milestone_id":
        url = verify_url(project, "not-a-uuid")
    elif case == "out_of_order":
        url = verify_url(project, project["milestones"][1])
    elif case == "not_reported":
        url = verify_url(project, project["milestones"][2])
    elif case == "own_report":
        # The operator may both report and verify, never the same milestone.
        operator = person(harness.issuer, subject_of(Role.OPERATOR, "VE"))
        await harness.client.post(
            f"/v1/projects/{project['id']}/milestones/{project['milestones'][2]['id']}:report",
            json={"note": "done"},
            headers=operator,
        )
        await harness.client.post(url, json=body, headers=headers)
        await harness.client.post(verify_url(project, project["milestones"][1]), json=body, headers=headers)
        url, headers = verify_url(project, project["milestones"][2]), operator
    elif case == "not_started":
        _, planned = await open_project(harness)
        project, url = planned, verify_url(planned, planned["milestones"][0])

    before = await snapshot(harness, project["id"]), await snapshot(harness, other["id"])
    response = await harness.client.post(url, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if code is not None:
        assert response.json()["code"] == code
    after = await snapshot(harness, project["id"]), await snapshot(harness, other["id"])
    assert after == before


async def test_long_note_at_the_limit_is_accepted(harness: Harness) -> None:
    project = await open_started(harness, reported=1)
    response = await harness.client.post(
        verify_url(project, project["milestones"][0]), json={"note": "x" * 2000}, headers=harness.overseer(COMMUNE_CODE)
    )
    assert response.status_code == 200, response.text


async def test_double_verify_conflicts_and_writes_nothing(harness: Harness) -> None:
    project = await open_started(harness, reported=1)
    url = verify_url(project, project["milestones"][0])
    first = await harness.client.post(url, json={"note": "Done."}, headers=harness.overseer())
    assert first.status_code == 200
    before = await snapshot(harness, project["id"])
    second = await harness.client.post(url, json={"note": "Done again."}, headers=harness.overseer())
    assert second.status_code == 409
    assert second.json()["code"] == "milestone_not_pending"
    assert await snapshot(harness, project["id"]) == before
    assert len(await outbox(harness, "projects.milestone.verified", project["id"])) == 1


async def test_concurrent_double_verify_has_exactly_one_winner(harness: Harness) -> None:
    project = await open_started(harness, reported=1)
    url = verify_url(project, project["milestones"][0])
    responses = await asyncio.gather(
        *[harness.client.post(url, json={"note": f"Attempt {i}"}, headers=harness.overseer()) for i in range(2)]
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    assert len(await outbox(harness, "projects.milestone.verified", project["id"])) == 1


async def test_many_concurrent_verifies_of_every_milestone(harness: Harness) -> None:
    """Ten callers racing on all three milestones: at most one success per milestone, never out of order."""
    project = await open_started(harness, reported=3)
    attempts = [(m, i) for m in project["milestones"] for i in range(10)]
    responses = await asyncio.gather(
        *[
            harness.client.post(verify_url(project, m), json={"note": f"race {i}"}, headers=harness.overseer())
            for m, i in attempts
        ]
    )
    assert all(r.status_code in (200, 409) for r in responses)
    winners = [m["sequence"] for (m, _), r in zip(attempts, responses, strict=True) if r.status_code == 200]
    assert len(winners) == len(set(winners))
    # Only a verified prefix can exist.
    assert sorted(winners) == list(range(1, len(winners) + 1))
    assert 1 in winners
    staged = await outbox(harness, "projects.milestone.verified", project["id"])
    assert len(staged) == len(winners)
    detail = (await harness.client.get(f"/v1/projects/{project['id']}")).json()
    statuses = [m["status"] for m in detail["milestones"]]
    assert statuses == ["verified"] * len(winners) + ["reported"] * (3 - len(winners))


# --- disbursement -> funded -> completed -------------------------------------------------------


async def test_disbursements_fund_milestones_and_count_as_disbursed(harness: Harness) -> None:
    project = await open_started(harness, amount_minor=999, reported=3)
    milestones = project["milestones"]
    disbursements = []
    for milestone in milestones:
        response = await harness.client.post(
            verify_url(project, milestone), json={"note": "ok"}, headers=harness.overseer()
        )
        assert response.status_code == 200
        event_id = uuid.uuid4()
        disbursement_id = await disburse(harness, project, milestone, event_id=event_id)
        # The same event again (after a crash before the ack) changes nothing.
        await disburse(
            harness,
            project,
            milestone,
            disbursement_id=disbursement_id,
            event_id=event_id,
            nats_msg_id=str(uuid.uuid4()),
        )
        disbursements.append(disbursement_id)
        detail = (await harness.client.get(f"/v1/projects/{project['id']}")).json()
        funded = detail["milestones"][milestone["sequence"] - 1]
        assert funded["status"] == "funded"
        assert funded["disbursement_id"] == str(disbursement_id)
        assert funded["funded_at"] is not None
        assert funded["disbursed_minor"] == milestone["tranche_minor"]

    detail = (await harness.client.get(f"/v1/projects/{project['id']}")).json()
    # Paid is not done: completion waits for the spending to be accounted for (test_execution).
    assert (detail["status"], detail["completed_at"], detail["spent_minor"]) == ("in_execution", None, 0)
    assert detail["disbursed_minor"] == detail["budget_minor"] == 999
    assert [m["tranche_minor"] for m in detail["milestones"]] == [399, 399, 201]

    staged = await outbox(harness, "projects.milestone.funded", project["id"])
    events = [project_events.MilestoneFunded.FromString(p) for p in staged]
    assert [(e.project_id, e.milestone_id, e.disbursement_id) for e in events] == [
        (project["id"], m["id"], str(d)) for m, d in zip(milestones, disbursements, strict=True)
    ]

    async def relayed() -> bool:
        return len(await published(harness, "projects.milestone.funded", project["id"])) == 3

    await eventually(relayed)

    # A funded milestone has nothing left to verify.
    again = await harness.client.post(
        verify_url(project, milestones[-1]), json={"note": "again"}, headers=harness.overseer()
    )
    assert again.status_code == 409


async def test_disbursement_copy_under_new_event_id_is_not_applied_twice(harness: Harness) -> None:
    project = await open_started(harness, reported=2)
    milestone = project["milestones"][0]
    await harness.client.post(verify_url(project, milestone), json={"note": "ok"}, headers=harness.overseer())
    disbursement_id = await disburse(harness, project, milestone)
    await disburse(harness, project, milestone, disbursement_id=disbursement_id)
    # A different disbursement for an already funded milestone is refused too.
    await disburse(harness, project, milestone)
    assert len(await outbox(harness, "projects.milestone.funded", project["id"])) == 1
    detail = (await harness.client.get(f"/v1/projects/{project['id']}")).json()
    assert detail["milestones"][0]["disbursement_id"] == str(disbursement_id)
    assert detail["disbursed_minor"] == milestone["tranche_minor"]
    assert detail["status"] == "in_execution"


async def test_disbursement_for_unverified_or_unknown_milestone_is_ignored(harness: Harness) -> None:
    _, project = await open_project(harness)
    before = await snapshot(harness, project["id"])
    await disburse(harness, project, project["milestones"][0])
    await disburse(harness, project, {**project["milestones"][0], "id": str(uuid.uuid4())})
    after = await snapshot(harness, project["id"])
    assert after[0] == before[0]
    assert await outbox(harness, "projects.milestone.funded", project["id"]) == []


# --- rejected tranche -> noted on the verified milestone ---------------------------------------


async def _milestone(h: Harness, project: dict[str, Any], sequence: int) -> dict[str, Any]:
    detail = (await h.client.get(f"/v1/projects/{project['id']}")).json()
    milestone: dict[str, Any] = detail["milestones"][sequence - 1]
    return milestone


async def _rejection_columns(h: Harness, project_id: str) -> list[tuple[Any, ...]]:
    async with h.service.runtime.db.transaction() as session:
        rows = await session.execute(
            select(Milestone.status, Milestone.disbursement_rejected_reason, Milestone.disbursement_rejected_at)
            .where(Milestone.project_id == uuid.UUID(project_id))
            .order_by(Milestone.sequence)
        )
        return [tuple(r) for r in rows]


async def test_rejected_tranche_is_shown_on_the_verified_milestone_once(harness: Harness) -> None:
    project = await open_started(harness, reported=2)
    milestone = project["milestones"][0]
    response = await harness.client.post(
        verify_url(project, milestone), json={"note": "ok"}, headers=harness.overseer()
    )
    assert response.status_code == 200
    verified_at = response.json()["milestone"]["verified_at"]
    assert response.json()["milestone"]["disbursement_rejected_reason"] is None
    before = await snapshot(harness, project["id"])

    event_id = uuid.uuid4()
    refused = await reject(harness, project, milestone, event_id=event_id)
    shown = await _milestone(harness, project, 1)
    assert shown["status"] == "verified" and shown["verified_at"] == verified_at
    assert shown["disbursement_rejected_reason"] == "exceeds_allocation"
    assert shown["disbursement_rejected_at"] is not None
    assert (shown["funded_at"], shown["disbursement_id"], shown["disbursed_minor"]) == (None, None, None)
    detail = (await harness.client.get(f"/v1/projects/{project['id']}")).json()
    assert (detail["status"], detail["disbursed_minor"]) == ("in_execution", 0)
    assert all(m["disbursement_rejected_reason"] is None for m in detail["milestones"][1:])
    # Nothing else happens: the milestone row is otherwise untouched and no event is staged.
    after = await snapshot(harness, project["id"])
    assert after == before
    noted = await _rejection_columns(harness, project["id"])

    # The same event redelivered (inbox), and a copy under a new event id with another reason
    # (already noted): no second effect, the first reason and time stand.
    await reject(
        harness,
        project,
        milestone,
        event_id=event_id,
        nats_msg_id=str(uuid.uuid4()),
        disbursement_id=refused.disbursement_id,
    )
    await reject(harness, project, milestone, reason="currency_mismatch", disbursement_id=refused.disbursement_id)
    assert await _rejection_columns(harness, project["id"]) == noted
    assert await snapshot(harness, project["id"]) == before
    async with harness.service.runtime.db.transaction() as session:
        handled = await session.scalar(
            select(func.count())
            .select_from(inbox_table)
            .where(inbox_table.c.consumer == REJECTIONS_CONSUMER, inbox_table.c.event_id == event_id)
        )
    assert handled == 1
    assert (await _milestone(harness, project, 1))["disbursement_rejected_reason"] == "exceeds_allocation"

    # The next milestone can still be verified; the refused one stays verified.
    second = await harness.client.post(
        verify_url(project, project["milestones"][1]), json={"note": "ok"}, headers=harness.overseer()
    )
    assert second.status_code == 200


async def test_rejections_that_do_not_fit_are_ignored(harness: Harness) -> None:
    project = await open_started(harness, reported=1)
    _, other = await open_project(harness)
    first = project["milestones"][0]
    await harness.client.post(verify_url(project, first), json={"note": "ok"}, headers=harness.overseer())
    before = await _rejection_columns(harness, project["id"]), await snapshot(harness, project["id"])
    # A pending milestone, an unknown milestone, another project's or allocation's ids, and
    # malformed events (no reason, bad ids): none changes anything nor blocks the stream.
    await reject(harness, project, project["milestones"][1])
    await reject(harness, project, {**first, "id": str(uuid.uuid4())})
    await reject(harness, project, first, project_id=other["id"])
    await reject(harness, project, first, allocation_id=other["allocation_id"])
    await reject(harness, project, first, reason="   ")
    await reject(harness, project, first, disbursement_id="not-a-uuid")
    await reject(harness, project, first, milestone_id="not-a-uuid")
    assert (await _rejection_columns(harness, project["id"]), await snapshot(harness, project["id"])) == before
    # Funding may leave ids it could not parse empty: still recorded against the milestone.
    await reject(harness, project, first, allocation_id="", commune_id="", reason="allocation_unknown")
    assert (await _milestone(harness, project, 1))["disbursement_rejected_reason"] == "allocation_unknown"


async def test_rejection_after_funding_is_ignored(harness: Harness) -> None:
    project = await open_started(harness, reported=2)
    milestone = project["milestones"][0]
    await harness.client.post(verify_url(project, milestone), json={"note": "ok"}, headers=harness.overseer())
    await disburse(harness, project, milestone)
    await reject(harness, project, milestone)
    shown = await _milestone(harness, project, 1)
    assert (shown["status"], shown["disbursement_rejected_reason"]) == ("funded", None)


# --- gRPC ---------------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def grpc_stub(harness: Harness) -> AsyncIterator[projects_pb2_grpc.ProjectsServiceStub]:
    async with grpc_server(SPEC, harness.service) as target, grpc.aio.insecure_channel(target) as channel:
        yield projects_pb2_grpc.ProjectsServiceStub(channel)  # type: ignore[no-untyped-call]


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def test_grpc_get_project(harness: Harness, grpc_stub: projects_pb2_grpc.ProjectsServiceStub) -> None:
    message, project = await open_project(harness)
    service_token = harness.issuer.token(roles=["service"], territories=["VE"], client_id="svc-funding")
    reply = await grpc_stub.GetProject(
        projects_pb2.GetProjectRequest(project_id=project["id"]), metadata=bearer(service_token)
    )
    assert reply.project_id == project["id"]
    assert reply.allocation_id == message.allocation_id
    assert reply.commune_code == COMMUNE_CODE
    assert reply.budget.amount_minor == 1_000_000
    assert [m.milestone_id for m in reply.milestones] == [m["id"] for m in project["milestones"]]

    cases = [
        (
            project["id"],
            harness.issuer.token(realm_access={"roles": ["overseer"]}, comuna_territories=["VE"]),
            grpc.StatusCode.PERMISSION_DENIED,
            "forbidden_role",
        ),
        (str(uuid.uuid4()), service_token, grpc.StatusCode.NOT_FOUND, "project_not_found"),
        ("not-a-uuid", service_token, grpc.StatusCode.INVALID_ARGUMENT, "invalid_id"),
        (project["id"], harness.issuer.token(roles=["service"], ttl=-300), grpc.StatusCode.UNAUTHENTICATED, None),
    ]
    for project_id, token, status, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await grpc_stub.GetProject(projects_pb2.GetProjectRequest(project_id=project_id), metadata=bearer(token))
        assert failure.value.code() == status
        if code is not None:
            assert error_code_of(failure.value) == code
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await grpc_stub.GetProject(projects_pb2.GetProjectRequest(project_id=project["id"]))
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_grpc_project_shows_a_refused_tranche(
    harness: Harness, grpc_stub: projects_pb2_grpc.ProjectsServiceStub
) -> None:
    project = await open_started(harness, reported=1)
    milestone = project["milestones"][0]
    await harness.client.post(verify_url(project, milestone), json={"note": "ok"}, headers=harness.overseer())
    await reject(harness, project, milestone)
    service_token = harness.issuer.token(roles=["service"], territories=["VE"], client_id="svc-funding")
    reply = await grpc_stub.GetProject(
        projects_pb2.GetProjectRequest(project_id=project["id"]), metadata=bearer(service_token)
    )
    first, second = reply.milestones[:2]
    assert first.status == projects_pb2.MILESTONE_STATUS_VERIFIED
    assert first.disbursement_rejected_reason == "exceeds_allocation" and first.HasField("disbursement_rejected_at")
    assert second.disbursement_rejected_reason == "" and not second.HasField("disbursement_rejected_at")


async def test_role_and_territory_come_from_the_same_assignment(harness: Harness) -> None:
    # Spokesperson of the project's commune and overseer of another: an overseer somewhere and
    # present here, yet no overseer OF this commune.
    subject = "spokesperson-here-overseer-elsewhere"
    await harness.identity.grant(subject, Role.SPOKESPERSON, COMMUNE_CODE)
    await harness.identity.grant(subject, Role.OVERSEER, OTHER_COMMUNE)
    _, project = await open_project(harness)
    milestone = project["milestones"][0]
    headers = harness.issuer.headers(
        subject=subject, realm_access={"roles": ["overseer"]}, comuna_territories=[COMMUNE_CODE]
    )
    response = await harness.client.post(verify_url(project, milestone), json={"note": "ok"}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden_territory")
    assert await outbox(harness, "projects.milestone.verified", project["id"]) == []


async def test_a_budget_too_small_for_every_milestone_keeps_the_ones_it_can_pay(harness: Harness) -> None:
    # 40/40/20 of 2 minor units: nothing, nothing, 2. Every milestone releases a positive tranche.
    _, project = await open_project(harness, amount_minor=2)
    assert [(m["title"], m["tranche_minor"]) for m in project["milestones"]] == [("Completion", 2)]
