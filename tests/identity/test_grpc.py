"""Identity's gRPC API over a real server: service tokens, status codes with details."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_identity.service import SPEC
from comuna_platform.rpc import error_code_of
from tests.identity.authority import REGISTRAR
from tests.identity.test_registry_api import registrar, seed
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(scope="module")
async def stub(identity: RunningService, issuer: TestIssuer) -> AsyncIterator[identity_pb2_grpc.IdentityServiceStub]:
    await seed(identity, issuer)
    residents = [
        {"national_id": "V7000001", "birth_date": "1970-01-01", "council_code": "VE.01.01.C1.CC1"},
        {"national_id": "V7000002", "birth_date": "2015-01-01", "council_code": "VE.01.01.C1.CC1"},
        {"national_id": "V7000003", "birth_date": "1970-01-01", "council_code": "VE.01.01.C2.CC1"},
    ]
    response = await identity.client.post(
        "/v1/residents:batch", json={"residents": residents}, headers=registrar(issuer)
    )
    assert response.status_code in (201, 409)
    async with grpc_server(SPEC, identity) as target, grpc.aio.insecure_channel(target) as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]


def service_token(issuer: TestIssuer) -> list[tuple[str, str]]:
    token = issuer.token(roles=["service"], territories=["VE"], client_id="svc-consultations")
    return [("authorization", f"Bearer {token}")]


async def commune_id(stub: identity_pb2_grpc.IdentityServiceStub, issuer: TestIssuer, code: str) -> str:
    reply = await stub.GetTerritory(pb.GetTerritoryRequest(code=code), metadata=service_token(issuer))
    assert [a.code for a in reply.ancestors] == ["VE", "VE.01", "VE.01.01"]
    return str(reply.territory.id)


async def test_list_communes_pages_through_all(stub: identity_pb2_grpc.IdentityServiceStub, issuer: TestIssuer) -> None:
    first = await stub.ListCommunes(pb.ListCommunesRequest(page_size=1), metadata=service_token(issuer))
    second = await stub.ListCommunes(
        pb.ListCommunesRequest(page_size=1, page_token=first.next_page_token), metadata=service_token(issuer)
    )
    assert [c.code for c in [*first.communes, *second.communes]] == ["VE.01.01.C1", "VE.01.01.C2"]
    assert second.next_page_token == ""  # the last page says so
    assert "VE" not in first.next_page_token  # opaque, versioned: not the raw code


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pb.ListCommunesRequest(page_size=-5), "invalid_page_size"),
        # A NUL never reaches the page decoder: the platform's interceptor refuses it first.
        (pb.ListCommunesRequest(page_token="\0"), "invalid_characters"),
        (pb.ListCommunesRequest(page_token="VE.01.01.C1"), "invalid_page_token"),
    ],
)
async def test_bad_pages_are_invalid_argument_not_internal(
    stub: identity_pb2_grpc.IdentityServiceStub, issuer: TestIssuer, request_: pb.ListCommunesRequest, code: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListCommunes(request_, metadata=service_token(issuer))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code_of(refused.value) == code


@pytest.mark.parametrize(
    ("metadata_kind", "request_kind", "status", "code"),
    [
        ("none", "ok", grpc.StatusCode.UNAUTHENTICATED, None),
        ("person", "ok", grpc.StatusCode.PERMISSION_DENIED, "forbidden_role"),
        ("service", "bad_uuid", grpc.StatusCode.INVALID_ARGUMENT, "invalid_id"),
        ("service", "ok", grpc.StatusCode.NOT_FOUND, "roll_not_found"),
    ],
)
async def test_errors_have_proper_status_codes(
    stub: identity_pb2_grpc.IdentityServiceStub,
    issuer: TestIssuer,
    metadata_kind: str,
    request_kind: str,
    status: grpc.StatusCode,
    code: str | None,
) -> None:
    request = {
        "ok": pb.GetRollRequest(consultation_id=str(uuid.uuid4())),
        "bad_uuid": pb.GetRollRequest(consultation_id="nope"),
    }[request_kind]
    metadata = {
        "none": [],
        "person": [("authorization", f"Bearer {issuer.token(subject=REGISTRAR, roles=[])}")],
        "service": service_token(issuer),
    }[metadata_kind]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetRoll(request, metadata=metadata)
    assert raised.value.code() == status
    if code is not None:
        assert error_code_of(raised.value) == code
