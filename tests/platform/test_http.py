"""The REST conventions every service inherits: problem+json everywhere, no stack traces, probes."""

from __future__ import annotations

import importlib

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from comuna_platform.errors import Conflict
from comuna_platform.http import create_app
from comuna_platform.http.metrics import metrics_app

pytestmark = pytest.mark.asyncio

router = APIRouter(prefix="/v1")


class Body(BaseModel):
    n: int


@router.post("/things")
async def create(body: Body) -> dict[str, int]:
    if body.n == 409:
        raise Conflict("already there", code="thing_exists", thing=body.n)
    if body.n == 500:
        raise RuntimeError("secret internal detail")
    return {"n": body.n}


async def down() -> bool:
    return False


def client(ready: bool = True) -> httpx.AsyncClient:
    async def check() -> bool:
        return ready

    app = create_app(
        service="test", title="t", description="d", routers=[router], readiness_checks=[("database", check)]
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://localhost"
    )


async def test_domain_errors_become_problems() -> None:
    async with client() as c:
        response = await c.post("/v1/things", json={"n": 409})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "thing_exists" and body["detail"] == "already there" and body["thing"] == 409
    assert body["type"].endswith("/thing_exists") and body["instance"] == "/v1/things"


async def test_unexpected_errors_hide_their_details() -> None:
    async with client() as c:
        response = await c.post("/v1/things", json={"n": 500})
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_validation_errors_do_not_echo_input() -> None:
    async with client() as c:
        response = await c.post("/v1/things", json={"n": "V12345678-secret"})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert "V12345678" not in response.text


async def test_unknown_routes_and_methods_are_problems() -> None:
    async with client() as c:
        missing = await c.get("/v1/nothing")
        wrong_method = await c.get("/v1/things")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")


async def test_probes_and_metrics() -> None:
    async with client(ready=False) as c:
        assert (await c.get("/healthz")).status_code == 200
        not_ready = await c.get("/readyz")
        await c.post("/v1/things", json={"n": 1})
        # Not on the public REST port any more: only on the internal metrics port.
        public_metrics = await c.get("/metrics")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=metrics_app), base_url="http://m") as m:
        metrics = await m.get("/metrics")
        elsewhere = await m.get("/v1/things")
    assert not_ready.status_code == 503 and not_ready.json()["checks"] == {"database": False}
    assert public_metrics.status_code == 404
    assert metrics.status_code == 200 and elsewhere.status_code == 404
    assert 'comuna_http_requests_total{method="POST",route="/v1/things",status="200"}' in metrics.text


@pytest.mark.parametrize("service", ["identity", "consultations", "funding", "projects"])
async def test_every_service_documents_its_problem_responses(service: str) -> None:
    from comuna_platform.cli import openapi_document

    spec = importlib.import_module(f"comuna_{service}.service").SPEC
    document = openapi_document(spec)
    operations = [op for path, item in document["paths"].items() if path.startswith("/v1/") for op in item.values()]
    assert operations
    for operation in operations:
        assert list(operation["responses"]["422"]["content"]) == ["application/problem+json"]
    assert {"code", "detail", "status"} <= set(document["components"]["schemas"]["Problem"]["properties"])
