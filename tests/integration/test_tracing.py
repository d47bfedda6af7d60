"""One trace follows a request from REST through gRPC and NATS into another service's consumer.

identity, consultations and funding run in-process against real PostgreSQL, NATS and a real
gRPC server; spans go to an in-memory exporter.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import comuna_consultations
import comuna_funding
import comuna_identity
from comuna_consultations.service import SPEC as CONSULTATIONS
from comuna_consultations.settings import Settings as ConsultationsSettings
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.service import SPEC as FUNDING
from comuna_funding.settings import Settings as FundingSettings
from comuna_identity.domain import access
from comuna_identity.service import SPEC as IDENTITY
from comuna_identity.settings import Settings as IdentitySettings
from comuna_platform.auth.roles import Role
from comuna_platform.clock import ManualClock
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service
from tests.support.tracing import captured_spans

pytestmark = pytest.mark.asyncio

# Voting a month ahead: the roll's cut-off (today) must not be after the voting day.
_VOTING_DAY = date.today() + timedelta(days=30)
SCHEDULE = {
    "assemblies_open_at": f"{date.today() - timedelta(days=1)}T08:00:00-04:00",
    "candidates_close_at": f"{_VOTING_DAY - timedelta(days=3)}T18:00:00-04:00",
    "roll_cutoff_at": f"{_VOTING_DAY - timedelta(days=2)}T00:00:00-04:00",
    "voting_opens_at": f"{_VOTING_DAY}T06:00:00-04:00",
    "voting_closes_at": f"{_VOTING_DAY}T18:00:00-04:00",
    "certification_opens_at": f"{_VOTING_DAY}T20:00:00-04:00",
}


def _dates(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in body.items()}


def migrations(package: object) -> Path:
    return Path(package.__file__).parent / "migrations"  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    with captured_spans() as exporter:
        yield exporter


@pytest_asyncio.fixture(scope="module")
async def services(
    spans: InMemorySpanExporter, embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[tuple[RunningService, RunningService, RunningService]]:
    suffix = uuid.uuid4().hex[:8]
    urls = {
        name: fresh_database(embedded_postgres, f"trace_{name}_{suffix}", migrations(package))
        for name, package in (
            ("identity", comuna_identity),
            ("consultations", comuna_consultations),
            ("funding", comuna_funding),
        )
    }
    nats_url = embedded_nats.url
    async with (
        running_service(
            IDENTITY,
            IdentitySettings,
            database_url=urls["identity"],
            nats_url=nats_url,
            issuer=issuer,
            census_hash_key="t" * 32,
            roll_secret="r" * 32,
        ) as identity,
        grpc_server(IDENTITY, identity) as identity_target,
        running_service(
            CONSULTATIONS,
            ConsultationsSettings,
            database_url=urls["consultations"],
            nats_url=nats_url,
            issuer=issuer,
            identity_grpc_target=identity_target,
            voter_ref_secret="tracing-voter-ref-secret-" + "t" * 32,
        ) as consultations,
        running_service(
            FUNDING, FundingSettings, database_url=urls["funding"], nats_url=nats_url, issuer=issuer
        ) as funding,
    ):
        yield identity, consultations, funding


def trace_of(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def server_span(spans: InMemorySpanExporter, method: str, route_end: str) -> ReadableSpan:
    matches = [
        s
        for s in spans.get_finished_spans()
        if s.kind == SpanKind.SERVER and s.name.startswith(method) and s.name.endswith(route_end)
    ]
    assert matches, [s.name for s in spans.get_finished_spans()]
    return matches[-1]


async def test_a_trace_crosses_rest_grpc_and_nats(
    services: tuple[RunningService, RunningService, RunningService], spans: InMemorySpanExporter, issuer: TestIssuer
) -> None:
    identity, consultations, funding = services
    # The first authority comes from the seed (identity's REST API needs an existing one);
    # tokens carry only a subject.
    async with identity.runtime.db.unit_of_work() as uow:
        await access.ensure_territory(uow, code="VE", name="VE", kind="country", parent_code=None)
        for subject, role in (("tracing-registrar", Role.REGISTRAR), ("tracing-operator", Role.OPERATOR)):
            await access.ensure_assignment(uow, subject=subject, role=role, territory_code="VE")
    registrar = issuer.headers(subject="tracing-registrar", roles=[])
    operator = issuer.headers(subject="tracing-operator", roles=[])
    for code, kind, parent in [
        ("VE", "country", None),
        ("VE.07", "state", "VE"),
        ("VE.07.01", "municipality", "VE.07"),
        ("VE.07.01.C1", "commune", "VE.07.01"),
        ("VE.07.01.C1.CC1", "communal_council", "VE.07.01.C1"),
    ]:
        response = await identity.client.post(
            "/v1/territories", headers=operator, json={"code": code, "name": code, "kind": kind, "parent_code": parent}
        )
        assert response.status_code in (201, 409), response.text
    commune_id = (await identity.client.get("/v1/territories/VE.07.01.C1")).json()["id"]
    response = await identity.client.post(
        "/v1/residents",
        headers=registrar,
        json={"national_id": "V31000001", "birth_date": "1980-01-01", "council_code": "VE.07.01.C1.CC1"},
    )
    assert response.status_code == 201, response.text

    # The phases follow the service's clock: the test moves it past each amended date.
    clock = ManualClock(datetime.now(UTC))
    consultations.runtime.clock = clock
    consultation = await consultations.client.post(
        "/v1/consultations", headers=operator, json={"code": "2031-Q1", "title": "Trazas", **SCHEDULE}
    )
    assert consultation.status_code == 201, consultation.text
    base = f"/v1/consultations/{consultation.json()['id']}"
    candidate = await consultations.client.post(
        f"{base}/communes/{commune_id}/candidates",
        headers=operator,
        json={
            "title": "Agua potable",
            "description": "x",
            "assembly_priority": 1,
            "category": "water",
            "estimated_cost": 100_000,
        },
    )
    assert candidate.status_code == 201, candidate.text
    # Freezing the roll is where consultations calls identity inside a request (ballots do not).
    spans.clear()
    frozen = await consultations.client.post(f"{base}/roll:freeze", headers=operator, json={})
    assert frozen.status_code == 202, frozen.text
    rest = server_span(spans, "POST", "/roll:freeze")
    grpc_server_spans = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER and "FreezeRoll" in s.name]
    assert grpc_server_spans and trace_of(grpc_server_spans[-1]) == trace_of(rest)
    deadline = time.monotonic() + 60
    while (await consultations.client.get(f"{base}/roll")).json()["status"] != "verified":
        assert time.monotonic() < deadline, "the roll was not loaded within 60 s"
        await asyncio.sleep(0.05)
    layout = [
        {
            "centre_code": "CV-1",
            "centre_name": "Escuela",
            "address": "",
            "commune_code": "VE.07.01.C1",
            "table_code": "T1",
            "table_kind": "electronic",
        }
    ]
    laid = await consultations.client.post(f"{base}/voting-centres:import", headers=operator, json=layout)
    assert laid.status_code == 200, laid.text
    soon = clock.now() + timedelta(seconds=1)
    opening = {
        "reason": "trace",
        "candidates_close_at": soon,
        "roll_cutoff_at": soon,
        "voting_opens_at": soon + timedelta(seconds=1),
    }
    opened = await consultations.client.post(f"{base}:amend-schedule", headers=operator, json=_dates(opening))
    assert opened.status_code == 200, opened.text
    clock.advance(timedelta(seconds=3))

    async with identity.runtime.db.unit_of_work() as uow:
        await access.ensure_assignment(
            uow,
            subject="tracing-officer",
            role=Role.TABLE_OFFICER,
            territory_code="VE.07.01.C1",
            consultation_id=consultation.json()["id"],
            table_code="T1",
        )
    spans.clear()
    ballot = await consultations.client.post(
        f"{base}/ballots",
        headers=issuer.headers(subject="tracing-officer", roles=[]),
        json={
            "commune_id": commune_id,
            "candidate_id": candidate.json()["id"],
            "national_id": "V31000001",
            "channel": "table",
            "table_code": "T1",
        },
    )
    assert ballot.status_code == 201, ballot.text

    soon = clock.now() + timedelta(seconds=1)
    closing = {"reason": "trace", "voting_closes_at": soon, "certification_opens_at": soon}
    closed = await consultations.client.post(f"{base}:amend-schedule", headers=operator, json=_dates(closing))
    assert closed.status_code == 200, closed.text
    clock.advance(timedelta(seconds=2))
    spans.clear()
    assert (await consultations.client.post(f"{base}:certify", headers=operator)).status_code == 200
    certify = server_span(spans, "POST", ":certify")

    def consumed_in_funding() -> list[ReadableSpan]:
        return [
            s
            for s in spans.get_finished_spans()
            if s.kind == SpanKind.CONSUMER
            and s.name.startswith("consume consultations.")
            and trace_of(s) == trace_of(certify)
        ]

    for _ in range(200):
        if consumed_in_funding():
            break
        await asyncio.sleep(0.05)
    assert consumed_in_funding(), "funding's consumer span did not join the certify request's trace"
    allocations = (
        await funding.client.get("/v1/allocations", params={"consultation_id": consultation.json()["id"]})
    ).json()
    assert len(allocations["items"]) == 1
