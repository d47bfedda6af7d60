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
from typing import Any

import grpc
from fastapi import APIRouter, FastAPI
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from comuna_platform.auth.access import AccessResolver
from comuna_platform.auth.identity_resolver import GrpcAccessResolver
from comuna_platform.auth.lineages import GrpcTerritoryLineages, TerritoryLineages
from comuna_platform.auth.verifier import TokenVerifier
from comuna_platform.clock import Clock, SystemClock
from comuna_platform.db import Database
from comuna_platform.events import EventConsumer, EventHandler, OutboxRelay
from comuna_platform.events.consumer import ConsumerPolicy
from comuna_platform.events.parked import ParkedMessages
from comuna_platform.events.parked_api import router as parked_router
from comuna_platform.events.registry import event_source
from comuna_platform.events.streams import connect_service, ensure_stream
from comuna_platform.http import ReadinessCheck, create_app
from comuna_platform.http.edges import EdgePolicy
from comuna_platform.http.server import metrics_server, rest_server, rest_sockets
from comuna_platform.peers import IdentityPeer
from comuna_platform.rate_limit import RateLimiter
from comuna_platform.rpc import create_grpc_server
from comuna_platform.settings import ServiceSettings
from comuna_platform.supervision import Supervisor, Worker
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
    # The background workers (outbox relay, consumers, parked gauge), declared before the app is
    # built so `/readyz` checks each of them; started by `start_workers`.
    workers: Supervisor = field(init=False)
    consumers: list[EventConsumer] = field(default_factory=list)
    # Called after each NATS reconnect (e.g. to drop caches whose invalidations were missed).
    reconnect_listeners: list[Callable[[], None]] = field(default_factory=list)
    # Awaited when the service stops, before the connections close (e.g. gRPC client channels).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    # The server clock every use case reads (`comuna_platform.clock`); tests give a ManualClock.
    clock: Clock = field(default_factory=SystemClock)
    # Rate limits per caller (`comuna_platform.rate_limit`), shared by REST and gRPC.
    rate_limiter: RateLimiter = field(init=False)
    # The one client of identity of this process (`identity()`), built on first use.
    _identity: IdentityPeer | None = field(default=None, init=False, repr=False)
    # The one territory-lineage cache of this process (`identity_territory_lineages`), shared by
    # the REST routes and the consumers (declared before the app exists).
    _lineages: TerritoryLineages | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workers = Supervisor(self.stop)
        self.rate_limiter = RateLimiter.from_settings(self.settings)

    def identity(self) -> IdentityPeer:
        """The service's token source and channel to identity, shared by every client of
        identity in the process: built on the first call (identity itself never calls it),
        closed once when the runtime stops, after everything else it closes."""
        if self._identity is None:
            self._identity = IdentityPeer.from_settings(self.settings)
            # Closers run last-added first: the channel goes after everything that uses it.
            self.closers.insert(0, self._identity.close)
        return self._identity

    async def nats_ready(self) -> bool:
        return self.nats.is_connected

    def consumer_policy(self) -> ConsumerPolicy:
        return ConsumerPolicy(
            max_deliveries=self.settings.consumer_max_deliveries,
            stall_seconds=self.settings.consumer_stall_seconds,
        )

    def consumer(self, *, name: str, handlers: list[EventHandler[Any]]) -> EventConsumer:
        """A durable consumer of this service, with the delivery and parking policy of its settings."""
        return EventConsumer(self.db, self.js, name=name, handlers=handlers, policy=self.consumer_policy())


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
    # Where callers may act: identity resolves from its own database, the other services ask
    # identity (ResolvePrincipal) through the platform's caching resolver. Set on
    # `app.state.access_resolver` before serving.
    access_resolver: Callable[[Runtime], AccessResolver] | None = None
    # Where territories sit (root..unit, by the parent links in force), for scope checks of
    # services that do not hold the register: set on `app.state.territory_lineages`.
    territory_lineages: Callable[[Runtime], TerritoryLineages] | None = None


def identity_access_resolver(runtime: Runtime) -> AccessResolver:
    """`ServiceSpec.access_resolver` of every service but identity: ask identity over the
    runtime's shared channel, cache briefly, drop entries on `identity.role_assignment.*`."""
    identity = runtime.identity()
    resolver = GrpcAccessResolver(
        identity.channel,
        tokens=identity.tokens,
        timeout=identity.timeout,
        cache_seconds=runtime.settings.access_cache_seconds,
        stale_seconds=runtime.settings.access_stale_seconds,
    )

    async def watch(stop: asyncio.Event) -> None:
        await resolver.watch_invalidations(runtime.nats, stop)

    runtime.workers.add(Worker("access-invalidations", watch))
    runtime.reconnect_listeners.append(resolver.on_reconnect)
    return resolver


def identity_territory_lineages(runtime: Runtime) -> TerritoryLineages:
    """`ServiceSpec.territory_lineages` of services that check scope on territories: ask
    identity's GetTerritory (ancestors as of the day) over the runtime's shared channel, cache
    briefly, forget all on `identity.territory.*`. One per runtime: every caller gets the same."""
    if runtime._lineages is not None:
        return runtime._lineages
    identity = runtime.identity()
    lineages = GrpcTerritoryLineages(
        identity.channel,
        tokens=identity.tokens,
        timeout=identity.timeout,
        cache_seconds=runtime.settings.access_cache_seconds,
        stale_seconds=runtime.settings.access_stale_seconds,
    )

    async def watch(stop: asyncio.Event) -> None:
        await lineages.watch_invalidations(runtime.nats, stop)

    runtime.workers.add(Worker("territory-invalidations", watch))
    runtime.reconnect_listeners.append(lineages.on_reconnect)
    runtime._lineages = lineages
    return lineages


def service_routers(spec: ServiceSpec) -> list[APIRouter]:
    """The service's own routers plus the platform's (parked messages, for operators)."""
    return [*spec.routers, parked_router]


def build_app(spec: ServiceSpec, runtime: Runtime, readiness_checks: Sequence[ReadinessCheck] | None = None) -> FastAPI:
    """The REST app; `/readyz` checks the database, NATS and every worker (or `readiness_checks`)."""
    checks = readiness_checks
    if checks is None:
        checks = [("database", runtime.db.ping), ("nats", runtime.nats_ready), *runtime.workers.readiness_checks()]
    app = create_app(
        service=spec.name,
        title=spec.title,
        description=spec.description,
        routers=service_routers(spec),
        readiness_checks=checks,
        edges=EdgePolicy.from_settings(runtime.settings, spec.name),
    )
    app.state.runtime = runtime
    app.state.token_verifier = runtime.verifier
    app.state.rate_limiter = runtime.rate_limiter
    app.state.parked_messages = ParkedMessages(runtime.db, runtime.consumers)
    return app


def declare_workers(spec: ServiceSpec, runtime: Runtime) -> None:
    """Build the outbox relay, the consumers and the parked gauge under the runtime's supervisor."""
    settings = runtime.settings

    async def relay(stop: asyncio.Event) -> None:
        # A fresh relay per (re)start: it registers its commit listener when built and removes it
        # when it ends.
        relay = OutboxRelay(
            runtime.db, runtime.js, source=event_source(spec.name), poll_seconds=settings.outbox_poll_seconds
        )
        await relay.run(stop)

    runtime.workers.add(Worker("outbox-relay", relay))
    runtime.consumers = list(spec.consumers(runtime))
    for consumer in runtime.consumers:
        runtime.workers.add(Worker(f"consumer-{consumer.name}", consumer.run, consumer.health))
    if runtime.consumers:
        parked = ParkedMessages(runtime.db, runtime.consumers)
        runtime.workers.add(Worker("parked-gauge", parked.run_gauge))


@asynccontextmanager
async def open_runtime(spec: ServiceSpec, settings: ServiceSettings) -> AsyncIterator[tuple[Runtime, FastAPI]]:
    """Connect to the database and NATS, ensure the service's stream, and build its REST app.

    Used by `serve` and by tests, so tests run the same wiring as production.
    """
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    reconnect_listeners: list[Callable[[], None]] = []

    async def reconnected() -> None:
        log.info("NATS reconnected")
        for listener in list(reconnect_listeners):
            listener()

    nc = await connect_service(spec.name, settings, reconnected_cb=reconnected)
    try:
        js = nc.jetstream()
        await ensure_stream(js, spec.name)
        verifier = TokenVerifier(
            issuer=settings.oidc_issuer, audience=settings.oidc_audience, jwks_url=settings.oidc_jwks_url
        )
        runtime = Runtime(
            settings=settings, db=db, nats=nc, js=js, verifier=verifier, reconnect_listeners=reconnect_listeners
        )
        declare_workers(spec, runtime)
        app = build_app(spec, runtime)
        if spec.access_resolver is not None:
            app.state.access_resolver = spec.access_resolver(runtime)
        if spec.territory_lineages is not None:
            app.state.territory_lineages = spec.territory_lineages(runtime)
        if spec.on_startup is not None:
            spec.on_startup(runtime, app)
        try:
            yield runtime, app
        finally:
            if spec.on_shutdown is not None:
                await spec.on_shutdown(runtime, app)
            for close in reversed(runtime.closers):
                await close()
    finally:
        await nc.drain()
        await db.dispose()


def start_workers(spec: ServiceSpec, runtime: Runtime) -> list[asyncio.Task[None]]:
    """Start the declared workers, each supervised (logged and restarted with back-off when it
    fails), until `runtime.stop` is set."""
    return runtime.workers.start()


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
            reuse_port=settings.reuse_port,
        )
        await grpc_server.server.start()
        await grpc_server.set_serving(True)
        http = rest_server(app, settings)
        metrics = metrics_server(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stop.set)
        workers = start_workers(spec, runtime)
        http_task = asyncio.create_task(http.serve(sockets=rest_sockets(settings)), name="http")
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
