"""FastAPI application factory: the same edges, health, readiness and error shape everywhere.

`/metrics` is not here: it is served on its own internal port (`comuna_platform.http.metrics`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from comuna_platform.http.edges import EdgeMiddleware, EdgePolicy
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
    400: "Refused at the edge (e.g. a Host header this service does not serve)",
    401: "Missing, expired or untrusted bearer token",
    403: "The caller lacks the role or the territory scope",
    404: "Unknown resource",
    409: "Conflicts with the current state (e.g. a second vote)",
    413: "The request body is larger than the service accepts",
    422: "Invalid request (body, parameters or ids; characters that cannot be stored; duplicate JSON keys)",
    431: "The request's headers are larger than the service accepts",
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
    edges: EdgePolicy | None = None,
) -> FastAPI:
    # No slash redirects: Starlette builds their absolute URL from the Host header, so anyone
    # could make a link to this service redirect elsewhere. `/v1/territories/` is a 404.
    #
    # Tracing is FastAPI's own: one server span per request, named `METHOD /route/{template}` once
    # the router matched (no second route match, no span per ASGI message or dependency: those
    # cost a third of a ballot's CPU with the contrib instrumentor and say nothing a trace needs).
    # Request metrics are Prometheus' (`MetricsMiddleware`); errors are logged by the handlers.
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        redirect_slashes=False,
        telemetry={
            "tracing": True,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "exclude": _operations_probe,
        },
    )
    install_problem_handlers(app)
    # Added first, so it runs inside the metrics middleware: refusals at the edge are counted.
    app.add_middleware(EdgeMiddleware, policy=edges or EdgePolicy(allowed_hosts=("127.0.0.1", "localhost", service)))
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

    for router in routers:
        # Documents the problem+json error shape on every endpoint of the service.
        app.include_router(router, responses=PROBLEM_RESPONSES)
    _document_problems(app)
    return app


def _operations_probe(scope: MutableMapping[str, Any]) -> bool:
    """Liveness and readiness probes: polled every few seconds, never worth a span."""
    return scope.get("path") in ("/healthz", "/readyz")


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
