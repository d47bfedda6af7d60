"""FastAPI application factory: the same health, readiness, metrics and error shape everywhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from comuna_platform.http.metrics import MetricsMiddleware
from comuna_platform.http.problems import install_problem_handlers

# A named check that answers True when its dependency is reachable.
ReadinessCheck = tuple[str, Callable[[], Awaitable[bool]]]


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
        app.include_router(router)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app
