"""No input reaches PostgreSQL unchecked, and a database error that still escapes is a 4xx or a
503, never a 500: on the real services, the real database and real gRPC servers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from fastapi import APIRouter
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy import text

from comuna.consultations.v1 import consultations_pb2, events_pb2
from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.service import SPEC as IDENTITY
from comuna_identity.settings import Settings as IdentitySettings
from comuna_platform.db import Database
from comuna_platform.db_errors import DatabaseUnavailable, classify
from comuna_platform.errors import Conflict, InvalidInput
from comuna_platform.input_safety import message_problems
from tests.support.grpc_server import grpc_server
from tests.support.identity import person
from tests.support.issuer import TestIssuer
from tests.support.platform import OPERATOR, REGISTRAR, Platform, running_platform
from tests.support.service import running_service

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def platform(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Platform]:
    async with running_platform(embedded_postgres, embedded_nats, issuer) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scratch_db(embedded_postgres: EmbeddedPostgres) -> AsyncIterator[Database]:
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    embedded_postgres.create_database(name)
    db = Database(embedded_postgres.dsn(name), pool_size=2)
    async with db.transaction() as session:
        await session.execute(
            text("CREATE TABLE things (code varchar(4) PRIMARY KEY, n int CHECK (n >= 0), label text NOT NULL)")
        )
    try:
        yield db
    finally:
        await db.dispose()


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


# -- REST: the findings of the issue -------------------------------------------------------------


async def test_nul_in_query_parameters_is_422_on_every_service(platform: Platform) -> None:
    consultation = uuid.uuid4()
    cases = [
        ("identity", "/v1/territories?after=%00"),
        ("consultations", "/v1/consultations?after=%00"),
        ("consultations", f"/v1/consultations/{consultation}/communes?after=%00"),
        ("funding", "/v1/accounts?key=%00"),
    ]
    for service, url in cases:
        body = assert_problem(await platform.services[service].client.get(url), 422, "validation_error")
        assert body["errors"][0]["location"][0] == "query", (service, url)
        assert body["errors"][0]["type"] == "invalid_characters"


async def test_nul_in_a_territory_name_is_422_and_nothing_is_written(platform: Platform, issuer: TestIssuer) -> None:
    identity = platform.services["identity"].client
    headers = person(issuer, REGISTRAR)
    response = await identity.post(
        "/v1/territories",
        json={"code": "VE.02", "name": "Za\u0000ra", "kind": "state", "parent_code": "VE"},
        headers=headers,
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["location"] == ["body", "name"]
    assert (await identity.get("/v1/territories/VE.02")).status_code == 404


async def test_duplicate_keys_cannot_smuggle_a_second_value(platform: Platform, issuer: TestIssuer) -> None:
    identity = platform.services["identity"].client
    headers = {**person(issuer, REGISTRAR), "content-type": "application/json"}
    content = b'{"code": "VE.03", "name": "Falcon", "kind": "state", "parent_code": "VE", "parent_code": "VE.01"}'
    body = assert_problem(
        await identity.post("/v1/territories", content=content, headers=headers), 422, "validation_error"
    )
    assert body["errors"][0] == {
        "location": ["body", "parent_code"],
        "message": "appears more than once in the object",
        "type": "duplicate_key",
    }
    assert (await identity.get("/v1/territories/VE.03")).status_code == 404


async def test_a_consultation_code_with_non_ascii_digits_is_422(platform: Platform, issuer: TestIssuer) -> None:
    response = await platform.services["consultations"].client.post(
        "/v1/consultations",
        json={
            "code": "２０４０-Q1",
            "title": "Fullwidth",
            "assemblies_open_at": "2040-01-01T00:00:00Z",
            "voting_opens_at": "2040-02-01T00:00:00Z",
            "voting_closes_at": "2040-02-02T00:00:00Z",
        },
        headers=person(issuer, OPERATOR),
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["location"] == ["body", "code"]


async def test_a_cursor_beyond_int64_is_422(platform: Platform) -> None:
    from comuna_platform.paging import encode_page_token

    funding = platform.services["funding"].client
    response = await funding.get("/v1/transfers", params={"page_token": encode_page_token(2**63)})
    assert_problem(response, 422, "invalid_page_token")
    ok = await funding.get("/v1/transfers", params={"page_token": encode_page_token(2**63 - 1)})
    assert ok.status_code == 200


async def test_metrics_are_not_on_the_rest_port(platform: Platform) -> None:
    for service in platform.services.values():
        assert (await service.client.get("/metrics")).status_code == 404


# -- database errors that escape -----------------------------------------------------------------


async def _error_of(db: Database, statement: str, **params: Any) -> BaseException:
    with pytest.raises(Exception) as caught:
        async with db.transaction() as session:
            await session.execute(text(statement), params)
    return caught.value


@pytest.mark.parametrize(
    ("statement", "params", "expected", "code"),
    [
        ("INSERT INTO things VALUES (:c, 1, :l)", {"c": "toolong", "l": "x"}, InvalidInput, "invalid_input"),
        ("INSERT INTO things VALUES (:c, 1, :l)", {"c": "a", "l": "nul\x00"}, InvalidInput, "invalid_input"),
        ("INSERT INTO things VALUES (:c, 1, :l)", {"c": "a", "l": "lone \ud800"}, InvalidInput, "invalid_input"),
        ("INSERT INTO things VALUES (:c, :n, 'x')", {"c": "a", "n": 2**63}, InvalidInput, "invalid_input"),
        ("INSERT INTO things VALUES (:c, :n, 'x')", {"c": "a", "n": 2**40}, InvalidInput, "invalid_input"),
        ("INSERT INTO things VALUES (:c, -1, 'x')", {"c": "a"}, InvalidInput, "invalid_input"),
        ("INSERT INTO things VALUES (:c, 1, NULL)", {"c": "a"}, InvalidInput, "invalid_input"),
        ("SELECT CAST(:v AS uuid)", {"v": "not-a-uuid"}, InvalidInput, "invalid_input"),
        ("SELECT 1 LIMIT -5", {}, InvalidInput, "invalid_input"),
        ("INSERT INTO things VALUES ('dup', 1, 'x'), ('dup', 2, 'y')", {}, Conflict, "already_exists"),
    ],
)
async def test_database_errors_are_classified_as_client_errors(
    scratch_db: Database, statement: str, params: dict[str, Any], expected: type[Exception], code: str
) -> None:
    problem = classify(await _error_of(scratch_db, statement, **params))
    assert isinstance(problem, expected) and problem.code == code
    # What the client sees never quotes the submitted values.
    assert "nul" not in problem.detail and "toolong" not in problem.detail


async def test_an_unreachable_database_is_unavailable_and_genuine_bugs_are_not_hidden(scratch_db: Database) -> None:
    down = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing", pool_size=1)
    try:
        problem = classify(await _error_of(down, "SELECT 1"))
    finally:
        await down.dispose()
    assert isinstance(problem, DatabaseUnavailable) and problem.code == "database_unavailable"
    assert classify(await _error_of(scratch_db, "SELECT * FROM no_such_table")) is None  # a bug: stays a 500


async def test_rest_turns_an_escaped_database_error_into_422_not_500(scratch_db: Database) -> None:
    import httpx

    from comuna_platform.http import create_app

    router = APIRouter()

    @router.post("/things")
    async def create(label: str) -> dict[str, str]:
        async with scratch_db.transaction() as session:
            await session.execute(text("INSERT INTO things VALUES ('toolong', 1, :l)"), {"l": label})
        return {}

    app = create_app(service="t", title="t", description="d", routers=[router])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.post("/things", params={"label": "personal-data-V1234"})
    body = assert_problem(response, 422, "invalid_input")
    assert "V1234" not in response.text and "INSERT" not in body["detail"]


async def test_a_database_outage_is_503_with_retry_after(
    embedded_nats: EmbeddedNats, issuer: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/comuna_identity"
    async with running_service(
        IDENTITY,
        IdentitySettings,
        database_url=url,
        nats_url=embedded_nats.url,
        issuer=issuer,
        workers=False,
        census_hash_key="edge-census-key-0123456789abcdef",
        roll_secret="edge-roll-secret-0123456789abcdef0123",
    ) as identity:
        listing = await identity.client.get("/v1/territories")
        writing = await identity.client.post(
            "/v1/territories",
            json={"code": "VE", "name": "Venezuela", "kind": "country", "parent_code": None},
            headers=person(issuer, REGISTRAR),
        )
        ready = await identity.client.get("/readyz")
        async with grpc_server(IDENTITY, identity) as target, grpc.aio.insecure_channel(target) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetTerritory(pb.GetTerritoryRequest(code="VE"), metadata=service_token(issuer))
    for response in (listing, writing):
        assert_problem(response, 503, "database_unavailable")
        assert response.headers["retry-after"] == "2"
    assert ready.status_code == 503
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(caught.value).reason == "database_unavailable"


# -- gRPC ------------------------------------------------------------------------------------------


def service_token(issuer: TestIssuer) -> list[tuple[str, str]]:
    return [
        (
            "authorization",
            f"Bearer {issuer.token(roles=['service'], territories=['VE'], client_id='svc-consultations')}",
        )
    ]


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            info = error_details_pb2.ErrorInfo()
            assert status.details[0].Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def identity_stub(platform: Platform) -> AsyncIterator[identity_pb2_grpc.IdentityServiceStub]:
    async with grpc.aio.insecure_channel(platform.identity_grpc) as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("call", "request_message", "field", "reason"),
    [
        ("GetTerritory", pb.GetTerritoryRequest(code="\0"), "code", "invalid_characters"),
        ("ListCommunes", pb.ListCommunesRequest(page_token="VE\0"), "page_token", "invalid_characters"),
        ("ListCommunes", pb.ListCommunesRequest(under_code="\0", page_token="\0"), "page_token,under_code", None),
        ("ListCommunes", pb.ListCommunesRequest(page_size=-5), None, "invalid_page_size"),
    ],
)
async def test_grpc_refuses_bad_requests_with_invalid_argument(
    identity_stub: identity_pb2_grpc.IdentityServiceStub,
    issuer: TestIssuer,
    call: str,
    request_message: Any,
    field: str | None,
    reason: str | None,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(identity_stub, call)(request_message, metadata=service_token(issuer))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    if reason is not None:
        assert info.reason == reason
    if field is not None:
        assert sorted(info.metadata["field"].split(",")) == sorted(field.split(","))


async def test_grpc_refuses_undecodable_bytes_with_invalid_argument(platform: Platform, issuer: TestIssuer) -> None:
    # Field 2 (code), wire type 2, length 2, bytes that are not UTF-8.
    raw = b"\x12\x02\xff\xfe"
    async with grpc.aio.insecure_channel(platform.identity_grpc) as channel:
        call = channel.unary_unary("/comuna.identity.v1.IdentityService/GetTerritory")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(raw, metadata=service_token(issuer))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "invalid_message"


async def test_grpc_still_answers_good_requests(
    identity_stub: identity_pb2_grpc.IdentityServiceStub, issuer: TestIssuer
) -> None:
    reply = await identity_stub.GetTerritory(pb.GetTerritoryRequest(code="VE.01.01.C1"), metadata=service_token(issuer))
    assert reply.territory.code == "VE.01.01.C1"


async def test_nested_and_repeated_string_fields_are_walked() -> None:
    message = consultations_pb2.ListCertifiedResultsResponse(
        summary=events_pb2.ConsultationCertified(consultation_id="fine"),
        results=[events_pb2.CommuneResult(commune_code="ok"), events_pb2.CommuneResult(commune_code="b\0")],
        next_page_token="fine",
    )
    assert [p.location for p in message_problems(message)] == [("results", 1, "commune_code")]
