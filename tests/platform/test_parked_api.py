"""The platform's runtime with a small service of its own: every worker checked by /readyz, a
crashing consumer restarted (503 meanwhile), and the parked-messages REST API for national
operators (auditors read). Real PostgreSQL, NATS JetStream, tokens from a real issuer, and a
real identity deciding who holds which role where."""

from __future__ import annotations

import asyncio
import base64
import importlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import prometheus_client
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from comuna.identity.v1 import events_pb2
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.auth.roles import Role
from comuna_platform.cli import openapi_document
from comuna_platform.db import Database
from comuna_platform.events import EventConsumer, EventHandler, ReceivedEvent
from comuna_platform.events.streams import connect, ensure_stream
from comuna_platform.runtime import Runtime, ServiceSpec, identity_access_resolver
from comuna_platform.settings import ServiceSettings
from comuna_platform.uow import UnitOfWork
from tests.platform.consumers import FAST, count_effects, create_tables, eventually, publish, recording, settled
from tests.support.identity import Identity, person, running_identity, subject_of
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, running_service

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONSUMER = "sample-residents"
BIGINT_OVERFLOW = 2**63


class CrashableConsumer(EventConsumer):
    """Raises (as a lost connection would) whenever `crashing` is set, on demand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crashing = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        consuming = asyncio.ensure_future(super().run(stop))
        crash = asyncio.ensure_future(self.crashing.wait())
        done, _ = await asyncio.wait({consuming, crash}, return_when=asyncio.FIRST_COMPLETED)
        if crash in done:
            consuming.cancel()
            await asyncio.gather(consuming, return_exceptions=True)
            raise ConnectionResetError("connection reset by peer")
        crash.cancel()
        await consuming


class Sample:
    """A service with one consumer of identity's residents; the handler can be broken on purpose."""

    def __init__(self) -> None:
        self.broken = False
        self.consumer: CrashableConsumer | None = None
        self._record = recording()

    async def apply(self, uow: UnitOfWork, event: ReceivedEvent[events_pb2.ResidentRegistered]) -> None:
        if self.broken:
            raise RuntimeError("commune unknown")
        await self._record.apply(uow, event)

    def consumers(self, runtime: Runtime) -> list[EventConsumer]:
        handler = EventHandler(events_pb2.ResidentRegistered, self.apply)
        self.consumer = CrashableConsumer(runtime.db, runtime.js, name=CONSUMER, handlers=[handler], policy=FAST)
        return [self.consumer]

    def spec(self) -> ServiceSpec:
        return ServiceSpec(
            name="sample",
            title="Sample",
            description="A service of the platform's tests",
            settings_factory=ServiceSettings,
            routers=[],
            grpc_register=_no_grpc,
            consumers=self.consumers,
            access_resolver=identity_access_resolver,
        )


def _no_grpc(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    return []


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(tmp_path_factory.mktemp("nats-sample") / "jetstream", free_port()) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def js(nats_server: EmbeddedNats) -> AsyncIterator[JetStreamContext]:
    nc = await connect(nats_server.url, name="test-identity")
    context = nc.jetstream()
    await ensure_stream(context, "identity")
    yield context
    await nc.close()


@pytest.fixture(scope="module")
def sample() -> Sample:
    return Sample()


OPERATOR = subject_of(Role.OPERATOR, "VE")
AUDITOR = subject_of(Role.AUDITOR, "VE")
REGISTRAR = subject_of(Role.REGISTRAR, "VE")
REGIONAL = subject_of(Role.REGIONAL_OFFICIAL, "VE.01")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def identity(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Identity]:
    # On the session's NATS, apart from the sample's server: its events are not the sample's business.
    async with running_identity(embedded_postgres, embedded_nats, issuer, uuid.uuid4().hex[:10]) as running:
        await running.grant(OPERATOR, Role.OPERATOR, "VE")
        await running.grant(AUDITOR, Role.AUDITOR, "VE")
        await running.grant(REGISTRAR, Role.REGISTRAR, "VE")
        await running.grant(REGIONAL, Role.REGIONAL_OFFICIAL, "VE.01")
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(
    embedded_postgres: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    issuer: TestIssuer,
    js: JetStreamContext,
    sample: Sample,
    identity: Identity,
) -> AsyncIterator[RunningService]:
    name = f"sample_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    setup = Database(embedded_postgres.dsn(name))
    await create_tables(setup)
    await setup.dispose()
    url = embedded_postgres.dsn(name)
    async with running_service(
        sample.spec(),
        ServiceSettings,
        database_url=url,
        nats_url=nats_server.url,
        issuer=issuer,
        identity_grpc_target=identity.grpc_target,
        # ResolvePrincipal's contract allows the real services only: the sample borrows funding's client.
        service_client_id="svc-funding",
    ) as running:
        yield running


def operator(issuer: TestIssuer) -> dict[str, str]:
    return person(issuer, OPERATOR)


async def readiness(service: RunningService) -> tuple[int, dict[str, bool]]:
    response = await service.client.get("/readyz")
    return response.status_code, response.json()["checks"]


async def test_readyz_checks_every_worker(service: RunningService) -> None:
    status, checks = await eventually(lambda: _when_ready(service), "the service to be ready")
    assert status == 200
    assert checks == {
        "database": True,
        "nats": True,
        "worker:outbox-relay": True,
        f"worker:consumer-{CONSUMER}": True,
        "worker:parked-gauge": True,
    }


async def _when_ready(service: RunningService) -> tuple[int, dict[str, bool]] | None:
    status, checks = await readiness(service)
    return (status, checks) if status == 200 else None


async def test_a_crashed_consumer_is_restarted_and_readyz_is_503_meanwhile(
    service: RunningService, sample: Sample, js: JetStreamContext
) -> None:
    assert sample.consumer is not None
    await eventually(lambda: _when_ready(service), "the service to be ready")
    sample.consumer.crashing.set()
    status, checks = await eventually(lambda: _when_not_ready(service), "/readyz to report the crash")
    assert status == 503
    assert checks[f"worker:consumer-{CONSUMER}"] is False
    assert checks["worker:outbox-relay"] and checks["database"] and checks["nats"]
    sample.consumer.crashing.clear()
    await eventually(lambda: _when_ready(service), "the restarted consumer to be ready", within=40)
    resident = uuid.uuid4().hex
    await settled(js, CONSUMER, await publish(js, resident))
    assert await count_effects(service.runtime.db, resident) == 1
    assert service.runtime.workers.states[f"consumer-{CONSUMER}"].restarts >= 1


async def _when_not_ready(service: RunningService) -> tuple[int, dict[str, bool]] | None:
    status, checks = await readiness(service)
    return (status, checks) if status == 503 else None


async def test_parked_messages_are_for_national_operators_and_auditors(
    service: RunningService, issuer: TestIssuer
) -> None:
    assert (await service.client.get("/v1/parked-messages")).status_code == 401
    endpoints = [
        ("GET", "/v1/parked-messages"),
        ("GET", "/v1/parked-messages/1"),
        ("POST", "/v1/parked-messages/1:replay"),
    ]
    refused = {
        # A registrar nationwide, and a token claiming the operator role with no assignment behind it.
        "registrar": (person(issuer, REGISTRAR), "forbidden_role"),
        "claimed_operator": (
            issuer.headers(subject="nobody", roles=["operator"], territories=["VE"]),
            "forbidden_role",
        ),
    }
    for name, (headers, code) in refused.items():
        for method, path in endpoints:
            response = await service.client.request(method, path, headers=headers)
            assert (response.status_code, response.json()["code"]) == (403, code), (name, path)
            assert response.headers["content-type"] == "application/problem+json"
    # The auditor reads (an unknown id is a 404, not a 403) and never replays.
    auditor = person(issuer, AUDITOR)
    assert (await service.client.get("/v1/parked-messages", headers=auditor)).status_code == 200
    assert (await service.client.get("/v1/parked-messages/999999999", headers=auditor)).status_code == 404
    replay = await service.client.post("/v1/parked-messages/999999999:replay", headers=auditor)
    assert (replay.status_code, replay.json()["code"]) == (403, "forbidden_role")


async def test_operators_list_inspect_and_replay_exactly_once(
    service: RunningService, sample: Sample, issuer: TestIssuer, js: JetStreamContext
) -> None:
    headers = operator(issuer)
    garbage_seq = await publish(js, "garbage", payload=b"\xff\xfe")
    resident = uuid.uuid4().hex
    sample.broken = True
    try:
        await settled(js, CONSUMER, await publish(js, resident))
    finally:
        sample.broken = False
    listing = await service.client.get("/v1/parked-messages", params={"consumer": CONSUMER}, headers=headers)
    assert listing.status_code == 200, listing.text
    rows = {row["stream_seq"]: row for row in listing.json()["items"]}
    assert rows[garbage_seq]["reason"] == "undecodable"
    [failed] = [row for row in rows.values() if row["reason"] == "handler_failed"]
    assert failed["deliveries"] == FAST.max_deliveries and failed["error"] == "RuntimeError: commune unknown"
    # /metrics is served on the internal metrics port; the gauge lives in the process registry.
    metrics = prometheus_client.generate_latest().decode()
    assert f'comuna_parked_messages{{consumer="{CONSUMER}"}} {float(len(rows))}' in metrics

    detail = await service.client.get(f"/v1/parked-messages/{rows[garbage_seq]['id']}", headers=headers)
    assert detail.status_code == 200
    assert base64.b64decode(detail.json()["payload_base64"]) == b"\xff\xfe"
    assert detail.json()["headers"]["ce-source"] == "/comuna/identity"

    refused = await service.client.post(f"/v1/parked-messages/{rows[garbage_seq]['id']}:replay", headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "not_replayable")

    replay = f"/v1/parked-messages/{failed['id']}:replay"
    first, second = [await service.client.post(replay, headers=headers) for _ in range(2)]
    assert (first.status_code, first.json()["outcome"]) == (200, "applied")
    assert (second.status_code, second.json()["outcome"]) == (200, "already_replayed")
    assert await count_effects(service.runtime.db, resident) == 1
    remaining = await service.client.get("/v1/parked-messages", params={"consumer": CONSUMER}, headers=headers)
    assert failed["id"] not in {row["id"] for row in remaining.json()["items"]}
    # /metrics is served on the internal metrics port; the gauge lives in the process registry.
    metrics = prometheus_client.generate_latest().decode()
    assert f'comuna_parked_messages{{consumer="{CONSUMER}"}} {float(len(rows) - 1)}' in metrics


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/parked-messages/999999999", 404),
        ("POST", "/v1/parked-messages/999999999:replay", 404),
        ("GET", f"/v1/parked-messages/{BIGINT_OVERFLOW}", 422),
        ("POST", f"/v1/parked-messages/{BIGINT_OVERFLOW}:replay", 422),
        ("GET", "/v1/parked-messages/abc", 422),
        ("GET", "/v1/parked-messages/0", 422),
        ("GET", f"/v1/parked-messages?after={BIGINT_OVERFLOW}", 422),
        ("GET", "/v1/parked-messages?limit=0", 422),
        ("GET", "/v1/parked-messages?consumer=%00", 422),
    ],
)
async def test_bad_ids_and_parameters_are_problems(
    service: RunningService, issuer: TestIssuer, method: str, path: str, status: int
) -> None:
    response = await service.client.request(method, path, headers=operator(issuer))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("name", ["identity", "consultations", "funding", "projects"])
async def test_every_service_serves_the_parked_messages_api(name: str) -> None:
    spec = importlib.import_module(f"comuna_{name}.service").SPEC
    paths: Any = openapi_document(spec)["paths"]
    assert set(paths["/v1/parked-messages"]) == {"get"}
    assert set(paths["/v1/parked-messages/{parked_id}"]) == {"get"}
    assert set(paths["/v1/parked-messages/{parked_id}:replay"]) == {"post"}


async def test_identity_unreachable_is_503_never_allowed(
    embedded_postgres: EmbeddedPostgres, nats_server: EmbeddedNats, issuer: TestIssuer
) -> None:
    name = f"sample_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    async with running_service(
        Sample().spec(),
        ServiceSettings,
        database_url=embedded_postgres.dsn(name),
        nats_url=nats_server.url,
        issuer=issuer,
        workers=False,
        # Nobody listens there: every resolution fails.
        identity_grpc_target=f"127.0.0.1:{free_port()}",
        identity_timeout_seconds=2.0,
        service_client_id="svc-funding",
    ) as lonely:
        response = await lonely.client.get("/v1/parked-messages", headers=operator(issuer))
        assert (response.status_code, response.json()["code"]) == (503, "identity_unavailable")
        assert response.headers["content-type"] == "application/problem+json"
        # A service account holds no assignments: nothing to ask identity, no outage for it.
        service = issuer.headers(roles=["service"], client_id="svc-funding")
        refused = await lonely.client.get("/v1/parked-messages", headers=service)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_role")
