"""Run one service: REST (uvicorn), gRPC, the outbox relay and event consumers in one event loop.

A service describes itself with a `ServiceSpec`; everything else (connections, health, graceful
shutdown) is the same for all four and lives here once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
from fastapi import APIRouter, FastAPI
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from comuna_platform.auth.verifier import TokenVerifier
from comuna_platform.db import Database
from comuna_platform.events import EventConsumer, OutboxRelay
from comuna_platform.events.streams import connect, ensure_stream
from comuna_platform.http import create_app
from comuna_platform.http.edges import EdgePolicy
from comuna_platform.http.server import metrics_server, rest_server
from comuna_platform.rpc import create_grpc_server
from comuna_platform.settings import ServiceSettings
from comuna_platform.telemetry import setup_logging, setup_tracing

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The live connections of a running service, handed to its transport builders."""

    settings: ServiceSettings
    db: Database
    nats: NATS
    js: JetStreamContext
    verifier: TokenVerifier
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def nats_ready(self) -> bool:
        return self.nats.is_connected


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    description: str
    settings_factory: Callable[[], ServiceSettings]
    routers: Sequence[APIRouter]
    # Adds servicers to the server and returns their full service names.
    grpc_register: Callable[[Runtime, grpc.aio.Server], Sequence[str]]
    consumers: Callable[[Runtime], Sequence[EventConsumer]] = lambda runtime: ()
    # Called once connections are up, before serving (e.g. to open gRPC client channels).
    on_startup: Callable[[Runtime, FastAPI], None] | None = None
    # Called when the service stops, before connections close (e.g. to close those channels).
    on_shutdown: Callable[[Runtime, FastAPI], Awaitable[None]] | None = None


def build_app(spec: ServiceSpec, runtime: Runtime) -> FastAPI:
    app = create_app(
        service=spec.name,
        title=spec.title,
        description=spec.description,
        routers=spec.routers,
        readiness_checks=[("database", runtime.db.ping), ("nats", runtime.nats_ready)],
        edges=EdgePolicy.from_settings(runtime.settings, spec.name),
    )
    app.state.runtime = runtime
    app.state.token_verifier = runtime.verifier
    return app


@asynccontextmanager
async def open_runtime(spec: ServiceSpec, settings: ServiceSettings) -> AsyncIterator[tuple[Runtime, FastAPI]]:
    """Connect to the database and NATS, ensure the service's stream, and build its REST app.

    Used by `serve` and by tests, so tests run the same wiring as production.
    """
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    nc = await connect(settings.nats_url, name=f"comuna-{spec.name}")
    try:
        js = nc.jetstream()
        await ensure_stream(js, spec.name)
        verifier = TokenVerifier(
            issuer=settings.oidc_issuer, audience=settings.oidc_audience, jwks_url=settings.oidc_jwks_url
        )
        runtime = Runtime(settings=settings, db=db, nats=nc, js=js, verifier=verifier)
        app = build_app(spec, runtime)
        if spec.on_startup is not None:
            spec.on_startup(runtime, app)
        try:
            yield runtime, app
        finally:
            if spec.on_shutdown is not None:
                await spec.on_shutdown(runtime, app)
    finally:
        await nc.drain()
        await db.dispose()


def start_workers(spec: ServiceSpec, runtime: Runtime) -> list[asyncio.Task[None]]:
    """The outbox relay and the event consumers, running until `runtime.stop` is set."""
    relay = OutboxRelay(
        runtime.db, runtime.js, source=f"/comuna/{spec.name}", poll_seconds=runtime.settings.outbox_poll_seconds
    )
    tasks = [asyncio.create_task(relay.run(runtime.stop), name="outbox-relay")]
    tasks += [
        asyncio.create_task(consumer.run(runtime.stop), name=f"consumer-{consumer.name}")
        for consumer in spec.consumers(runtime)
    ]
    return tasks


async def serve(spec: ServiceSpec) -> None:
    settings = spec.settings_factory()
    setup_logging(spec.name, settings.log_level)
    provider = setup_tracing(spec.name, settings.otel_exporter)
    async with open_runtime(spec, settings) as (runtime, app):
        grpc_server = create_grpc_server(
            host=settings.grpc_host,
            port=settings.grpc_port,
            verifier=runtime.verifier,
            register=lambda server: spec.grpc_register(runtime, server),
        )
        await grpc_server.server.start()
        await grpc_server.set_serving(True)
        http = rest_server(app, settings)
        metrics = metrics_server(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stop.set)
        workers = start_workers(spec, runtime)
        http_task = asyncio.create_task(http.serve(), name="http")
        metrics_task = asyncio.create_task(metrics.serve(), name="metrics")
        log.info(
            "service started",
            extra={
                "http_port": settings.http_port,
                "grpc_port": settings.grpc_port,
                "metrics_port": settings.metrics_port,
            },
        )
        await runtime.stop.wait()

        log.info("service stopping")
        await grpc_server.set_serving(False)
        http.should_exit = True
        metrics.should_exit = True
        await grpc_server.server.stop(grace=5)
        await asyncio.gather(http_task, metrics_task, *workers, return_exceptions=True)
    provider.shutdown()
