"""The gRPC allow-list from the contracts, enforced by the platform's interceptor on real servers.

Identity runs for real (PostgreSQL, NATS, its servicer behind `create_grpc_server`); tokens come
from the test issuer in Keycloak's client-credentials shape (`azp` = `svc-<service>`).
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc

import comuna
import comuna_identity
from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.service import SPEC
from comuna_identity.settings import Settings
from comuna_platform.auth.allow_list import declared_callers
from comuna_platform.auth.verifier import TokenVerifier
from comuna_platform.rpc import create_grpc_server, error_code_of
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer
from tests.support.service import fresh_database, running_service

GET_ROLL = "/comuna.identity.v1.IdentityService/GetRoll"
SERVICES = ("identity", "consultations", "funding", "projects")


def service_metadata(issuer: TestIssuer, service: str) -> list[tuple[str, str]]:
    token = issuer.token(roles=["service"], territories=["VE"], client_id=f"svc-{service}")
    return [("authorization", f"Bearer {token}")]


def every_rpc() -> list[str]:
    for module in pkgutil.walk_packages(comuna.__path__, "comuna."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)
    methods = []
    for service in SERVICES:
        pool = descriptor_pool.Default()
        file = pool.FindFileByName(f"comuna/{service}/v1/{service}.proto")
        for svc in file.services_by_name.values():
            methods += [f"/{svc.full_name}/{m.name}" for m in svc.methods]
    return methods


def test_every_rpc_in_the_contracts_names_its_callers() -> None:
    methods = every_rpc()
    assert GET_ROLL in methods and len(methods) >= 7
    # Pseudonyms must never turn back into document numbers: the per-ballot lookup is gone.
    assert "/comuna.identity.v1.IdentityService/CheckEligibility" not in methods
    undeclared = [m for m in methods if not declared_callers(m)]
    assert undeclared == []
    for method in methods:
        assert declared_callers(method) <= set(SERVICES), method


def test_the_roll_answers_consultations_only() -> None:
    assert declared_callers(GET_ROLL) == {"consultations"}
    assert declared_callers("/comuna.identity.v1.IdentityService/Nope") == frozenset()
    assert declared_callers("/no.such.Service/Call") == frozenset()


@pytest_asyncio.fixture(scope="module")
async def identity_stub(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[identity_pb2_grpc.IdentityServiceStub]:
    migrations = Path(comuna_identity.__file__).parent / "migrations"
    url = fresh_database(embedded_postgres, f"identity_allow_{uuid.uuid4().hex[:8]}", migrations)
    async with (
        running_service(
            SPEC,
            Settings,
            database_url=url,
            nats_url=embedded_nats.url,
            issuer=issuer,
            census_hash_key="k" * 32,
            roll_secret="r" * 32,
        ) as identity,
        grpc_server(SPEC, identity) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        yield identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]


def roll_request() -> pb.GetRollRequest:
    return pb.GetRollRequest(consultation_id=str(uuid.uuid4()))


@pytest.mark.asyncio
@pytest.mark.parametrize("caller", ["funding", "projects", "identity"])
async def test_another_service_may_not_read_the_roll(
    identity_stub: identity_pb2_grpc.IdentityServiceStub, issuer: TestIssuer, caller: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity_stub.GetRoll(roll_request(), metadata=service_metadata(issuer, caller))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_code_of(refused.value) == "forbidden_caller"


@pytest.mark.asyncio
async def test_consultations_reads_the_roll(
    identity_stub: identity_pb2_grpc.IdentityServiceStub, issuer: TestIssuer
) -> None:
    metadata = service_metadata(issuer, "consultations")
    # The call reaches identity's handler, which looks the (made-up) consultation's roll up.
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await identity_stub.GetRoll(roll_request(), metadata=metadata)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_code_of(unknown.value) == "roll_not_found"
    listed = await identity_stub.ListCommunes(pb.ListCommunesRequest(page_size=10), metadata=metadata)
    assert list(listed.communes) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("claims", "code"),
    [
        # A person, even one Keycloak gives every staff realm role and a nationwide scope.
        ({"realm_access": {"roles": ["operator", "registrar", "overseer"]}}, "forbidden_role"),
        # A client named like a service but without the service role.
        ({"roles": ["registrar"], "client_id": "svc-lookalike"}, "forbidden_role"),
        # The service role on a client that is no Comuna service.
        ({"roles": ["service"], "client_id": "dashboard"}, "forbidden_role"),
    ],
)
async def test_people_and_foreign_clients_are_refused(
    identity_stub: identity_pb2_grpc.IdentityServiceStub, issuer: TestIssuer, claims: dict[str, Any], code: str
) -> None:
    token = issuer.token(territories=["VE"], **claims)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity_stub.GetRoll(roll_request(), metadata=[("authorization", f"Bearer {token}")])
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_code_of(refused.value) == code


async def echo(request: bytes, context: Any) -> bytes:
    return request


@pytest_asyncio.fixture
async def undeclared_target(issuer: TestIssuer) -> AsyncIterator[str]:
    """A platform gRPC server with one method that no contract declares."""

    def register(server: grpc.aio.Server) -> list[str]:
        handlers = {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("comuna.test.v1.Undeclared", handlers)])
        return ["comuna.test.v1.Undeclared"]

    port = free_port()
    verifier = TokenVerifier(issuer=issuer.issuer_url, audience="comuna")
    server = create_grpc_server(host="127.0.0.1", port=port, verifier=verifier, register=register)
    await server.server.start()
    await server.set_serving(True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.server.stop(grace=None)


@pytest.mark.asyncio
async def test_a_method_without_the_option_is_refused_to_everyone(undeclared_target: str, issuer: TestIssuer) -> None:
    async with grpc.aio.insecure_channel(undeclared_target) as channel:
        call: Any = channel.unary_unary("/comuna.test.v1.Undeclared/Echo")
        for service in SERVICES:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(b"hello", metadata=service_metadata(issuer, service))
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error_code_of(refused.value) == "method_not_allowed"
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await call(b"hello")
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Health stays open without any token.
        health: Any = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
