"""FastAPI application factory: the same health, readiness, metrics and error shape everywhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from comuna_platform.http.metrics import MetricsMiddleware
from comuna_platform.http.problems import install_problem_handlers

# A named check that answers True when its dependency is reachable.
ReadinessCheck = tuple[str, Callable[[], Awaitable[bool]]]


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response of every service carries them."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable, machine-readable error code, e.g. `already_voted`.")
    instance: str
    trace_id: str | None = None


_PROBLEM_STATUSES = {
    401: "Missing, expired or untrusted bearer token",
    403: "The caller lacks the role or the territory scope",
    404: "Unknown resource",
    409: "Conflicts with the current state (e.g. a second vote)",
    422: "Invalid request (body, parameters or ids)",
    503: "A dependency is unavailable; retry later",
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, description in _PROBLEM_STATUSES.items()
}


def create_app(
    *,
    service: str,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    readiness_checks: Sequence[ReadinessCheck] = (),
) -> FastAPI:
    app = FastAPI(title=title, description=description, version="1.0.0")
    install_problem_handlers(app)
    app.add_middleware(MetricsMiddleware)

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["operations"], summary="Readiness: database and NATS reachable")
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in readiness_checks}
        ready = all(results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        # Documents the problem+json error shape on every endpoint of the service.
        app.include_router(router, responses=PROBLEM_RESPONSES)
    _document_problems(app)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app


def _document_problems(app: FastAPI) -> None:
    """Add the Problem schema the error responses refer to (they carry no `model`, which would
    also advertise an application/json body that is never sent)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
