"""Run a service in-process against real PostgreSQL and NATS, wired exactly as `serve` wires it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.migrations import upgrade
from comuna_platform.runtime import Runtime, ServiceSpec, open_runtime, start_workers
from comuna_platform.settings import ServiceSettings
from tests.support.issuer import TestIssuer


@dataclass
class RunningService:
    runtime: Runtime
    app: FastAPI
    client: httpx.AsyncClient


def fresh_database(pg: EmbeddedPostgres, name: str, migrations_dir: Path) -> str:
    """Drop-free isolation: a new uniquely named database per test module, migrated to head."""
    pg.create_database(name)
    url = pg.dsn(name)
    upgrade(migrations_dir, url)
    return url


@asynccontextmanager
async def running_service(
    spec: ServiceSpec,
    settings_cls: type[ServiceSettings],
    *,
    database_url: str,
    nats_url: str,
    issuer: TestIssuer,
    workers: bool = True,
    identity_grpc_target: str | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningService]:
    """`identity_grpc_target`: where the service asks identity who may act where (ResolvePrincipal);
    without it, a service that asks gets 503 on its protected endpoints (identity unreachable)."""
    if identity_grpc_target is not None:
        overrides["identity_grpc_target"] = identity_grpc_target
    defaults: dict[str, Any] = {
        "oidc_audience": "comuna",
        # The contracts' gRPC allow-list knows a service by its client, `svc-<service>`.
        "service_client_id": f"svc-{spec.name}",
        "outbox_poll_seconds": 0.05,
        "allowed_hosts": ["testserver", "127.0.0.1", "localhost"],
    }
    settings = settings_cls(
        database_url=database_url, nats_url=nats_url, oidc_issuer=issuer.issuer_url, **{**defaults, **overrides}
    )
    async with open_runtime(spec, settings) as (runtime, app):
        tasks = start_workers(spec, runtime) if workers else []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            try:
                yield RunningService(runtime=runtime, app=app, client=client)
            finally:
                runtime.stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
