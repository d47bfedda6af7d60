"""The edges every REST API inherits from the platform: limits, trusted hosts, input safety,
security headers, no Host-reflecting redirect; and the header limit on a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, Response
from pydantic import BaseModel

from comuna_devstack.ports import free_port
from comuna_platform.http import create_app
from comuna_platform.http.edges import EdgePolicy
from comuna_platform.http.server import rest_server
from comuna_platform.settings import ServiceSettings

pytestmark = pytest.mark.asyncio

router = APIRouter(prefix="/v1")
SEEN: list[Any] = []


class Thing(BaseModel):
    name: str
    tags: list[str] = []


@router.post("/things", status_code=201)
async def create(body: Thing) -> dict[str, str]:
    SEEN.append(body)
    return {"name": body.name}


@router.get("/things")
async def search(after: str = "") -> dict[str, str]:
    SEEN.append(after)
    return {"after": after}


@router.get("/things/{name}")
async def read(name: str) -> dict[str, str]:
    SEEN.append(name)
    return {"name": name}


@router.get("/public")
async def public(response: Response) -> dict[str, str]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return {"ok": "yes"}


POLICY = EdgePolicy(
    max_header_bytes=4096,
    max_body_bytes=1000,
    allowed_hosts=("localhost", "api.example.org", "*.comuna.test"),
    trusted_proxies=EdgePolicy.from_settings(ServiceSettings(trusted_proxies=["10.0.0.0/8"]), "t").trusted_proxies,
)


def make_app() -> Any:
    return create_app(service="t", title="t", description="d", routers=[router], edges=POLICY)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    SEEN.clear()
    transport = httpx.ASGITransport(app=make_app(), client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        yield c


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    return body


def locations(body: dict[str, Any]) -> list[list[str]]:
    return [error["location"] for error in body["errors"]]


async def test_nul_in_query_path_and_header_is_refused_before_the_route(client: httpx.AsyncClient) -> None:
    query = await client.get("/v1/things?after=%00")
    path = await client.get("/v1/things/a%00b")
    header = await client.get("/v1/things", headers={"X-Request-Note": "a\x00b"})
    assert locations(assert_problem(query, 422, "validation_error")) == [["query", "after"]]
    assert locations(assert_problem(path, 422, "validation_error")) == [["path"]]
    assert locations(assert_problem(header, 422, "validation_error")) == [["header", "x-request-note"]]
    assert query.json()["errors"][0]["type"] == "invalid_characters"
    assert SEEN == []


async def test_nul_and_lone_surrogates_in_json_bodies_name_the_field(client: httpx.AsyncClient) -> None:
    nul = await client.post("/v1/things", json={"name": "a\u0000b"})
    surrogate = await client.post(
        "/v1/things",
        content=b'{"name": "ok", "tags": ["fine", "\\ud800"]}',
        headers={"content-type": "application/json"},
    )
    in_key = await client.post("/v1/things", json={"name": "ok", "x\u0000": 1})
    assert locations(assert_problem(nul, 422, "validation_error")) == [["body", "name"]]
    assert locations(assert_problem(surrogate, 422, "validation_error")) == [["body", "tags", "1"]]
    assert locations(assert_problem(in_key, 422, "validation_error")) == [["body", "x\u0000"]]
    assert SEEN == []


async def test_a_body_without_content_type_is_checked_as_json(client: httpx.AsyncClient) -> None:
    # FastAPI decodes a body without Content-Type as JSON, so the edge must too.
    response = await client.post("/v1/things", content=b'{"name": "\\u0000"}')
    assert locations(assert_problem(response, 422, "validation_error")) == [["body", "name"]]
    assert SEEN == []


async def test_duplicate_json_keys_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/things", content=b'{"name": "first", "name": "second"}', headers={"content-type": "application/json"}
    )
    nested = await client.post(
        "/v1/things",
        content=b'{"name": "x", "tags": [], "meta": {"a": 1, "a": 2}}',
        headers={"content-type": "application/json"},
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"] == [
        {"location": ["body", "name"], "message": "appears more than once in the object", "type": "duplicate_key"}
    ]
    assert locations(assert_problem(nested, 422, "validation_error")) == [["body", "meta", "a"]]
    assert SEEN == []


async def test_clean_input_still_reaches_the_route(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/things", json={"name": "Comuna Ñandú ２０４０", "tags": ["a\tb"]})
    found = await client.get("/v1/things", params={"after": "VE.01"})
    assert created.status_code == 201 and created.json() == {"name": "Comuna Ñandú ２０４０"}
    assert found.json() == {"after": "VE.01"}


async def test_invalid_json_is_left_to_the_routes_validation(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/things", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(response, 422, "validation_error")


async def test_bodies_over_the_limit_are_413_declared_or_streamed(client: httpx.AsyncClient) -> None:
    big = json.dumps({"name": "x" * 2000}).encode()
    declared = await client.post("/v1/things", content=big, headers={"content-type": "application/json"})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100  # no Content-Length: counted as it streams in

    streamed = await client.post("/v1/things", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(declared, 413, "payload_too_large")
    assert_problem(streamed, 413, "payload_too_large")
    assert "chunked" in streamed.request.headers.get("transfer-encoding", "")
    assert SEEN == []


async def test_headers_over_the_limit_are_431(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things", headers={"Authorization": "Bearer " + "a" * 5000})
    assert_problem(response, 431, "headers_too_large")


async def test_unknown_hosts_are_refused_and_slashes_never_redirect(client: httpx.AsyncClient) -> None:
    evil = await client.get("/v1/things", headers={"Host": "evil.example"})
    slash = await client.get("/v1/things/", headers={"Host": "localhost"})
    slash_evil = await client.get("/v1/things/", headers={"Host": "evil.example"})
    subdomain = await client.get("/v1/things", headers={"Host": "a.comuna.test:8443"})
    suffix_trick = await client.get("/v1/things", headers={"Host": "evilcomuna.test"})
    with_port = await client.get("/v1/things", headers={"Host": "api.example.org:8001"})
    assert_problem(evil, 400, "host_not_allowed")
    assert_problem(slash_evil, 400, "host_not_allowed")
    # The trailing-slash URL is not a route: 404, not a redirect to an absolute URL.
    assert_problem(slash, 404, "not_found")
    assert "location" not in slash.headers
    assert subdomain.status_code == 200 and with_port.status_code == 200
    assert_problem(suffix_trick, 400, "host_not_allowed")


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    ok = await client.get("/v1/things")
    refused = await client.get("/v1/things?after=%00")
    missing = await client.get("/v1/nothing")
    public = await client.get("/v1/public")
    for response in (ok, refused, missing):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in response.headers
    # A route that chose its own caching keeps it.
    assert public.headers["cache-control"] == "public, max-age=60"
    assert public.headers["x-content-type-options"] == "nosniff"


async def test_hsts_only_over_tls_or_from_a_trusted_proxy() -> None:
    app = make_app()
    trusted = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 1)), base_url="http://localhost"
    )
    untrusted = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 1)), base_url="http://localhost"
    )
    direct_tls = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 1)), base_url="https://localhost"
    )
    async with trusted, untrusted, direct_tls:
        via_proxy = await trusted.get("/v1/things", headers={"X-Forwarded-Proto": "https"})
        proxy_plain = await trusted.get("/v1/things", headers={"X-Forwarded-Proto": "http"})
        spoofed = await untrusted.get("/v1/things", headers={"X-Forwarded-Proto": "https"})
        tls = await direct_tls.get("/v1/things")
    assert via_proxy.headers["strict-transport-security"].startswith("max-age=")
    assert tls.headers["strict-transport-security"].startswith("max-age=")
    assert "strict-transport-security" not in proxy_plain.headers
    assert "strict-transport-security" not in spoofed.headers


async def test_settings_parse_comma_lists_and_default_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "api.example.org, *.comuna.test")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.1")
    settings = ServiceSettings()
    assert settings.allowed_hosts == ["api.example.org", "*.comuna.test"]
    assert [str(n) for n in EdgePolicy.from_settings(settings, "x").trusted_proxies] == ["10.0.0.0/8", "192.0.2.1/32"]
    monkeypatch.delenv("ALLOWED_HOSTS")
    defaults = EdgePolicy.from_settings(ServiceSettings(), "funding")
    assert defaults.host_allowed("funding:8003") and defaults.host_allowed("127.0.0.1:8003")
    assert defaults.host_allowed("localhost") and not defaults.host_allowed("evil.example")
    assert defaults.max_body_bytes == 1024 * 1024 and defaults.max_header_bytes == 16 * 1024


async def _raw_exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


async def test_a_huge_header_is_refused_on_the_socket_without_being_read_in_full() -> None:
    port = free_port()
    settings = ServiceSettings(http_port=port, max_header_bytes=4096)
    server = rest_server(make_app(), settings)
    task = asyncio.create_task(server.serve())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not server.started:
            assert asyncio.get_running_loop().time() < deadline, "server did not start"
            await asyncio.sleep(0.01)
        # A header that never ends (no CRLF follows): the server can only answer it by refusing
        # before reading it in full.
        endless = b"GET /v1/things HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + b"a" * 1024 * 1024
        answer = await _raw_exchange(port, endless)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert b"application/problem+json" in answer and b'"code":"headers_too_large"' in answer

        # A normal request on a fresh connection, and a 4xx keeps the connection alive.
        two = (
            b"GET /v1/things?after=%00 HTTP/1.1\r\nHost: localhost\r\n\r\n"
            b"GET /v1/things HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        both = await _raw_exchange(port, two)
        assert both.startswith(b"HTTP/1.1 422 ") and b"HTTP/1.1 200 " in both
    finally:
        server.should_exit = True
        await task
