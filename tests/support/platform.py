"""All four services in-process on the session's PostgreSQL and NATS, for tests that go
through every service's edges (input safety, fuzzing): identity seeded with a small territory
and its gRPC API on a real port, consultations wired to it."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

SERVICES = ("identity", "consultations", "funding", "projects")
TERRITORIES = [
    ("VE", "Venezuela", "country", None),
    ("VE.01", "Lara", "state", "VE"),
    ("VE.01.01", "Iribarren", "municipality", "VE.01"),
    ("VE.01.01.C1", "Comuna Uno", "commune", "VE.01.01"),
    ("VE.01.01.C1.CC1", "Consejo Uno", "communal_council", "VE.01.01.C1"),
]


@dataclass
class Platform:
    services: dict[str, RunningService]
    identity_grpc: str
    territory_ids: dict[str, uuid.UUID]


@asynccontextmanager
async def running_platform(
    pg: EmbeddedPostgres, nats: EmbeddedNats, issuer: TestIssuer, *, workers: bool = False
) -> AsyncIterator[Platform]:
    suffix = uuid.uuid4().hex[:10]
    async with AsyncExitStack() as stack:
        services: dict[str, RunningService] = {}
        identity_target = ""
        for name in SERVICES:
            package = importlib.import_module(f"comuna_{name}")
            spec = importlib.import_module(f"comuna_{name}.service").SPEC
            settings_cls = importlib.import_module(f"comuna_{name}.settings").Settings
            url = fresh_database(pg, f"edge_{name}_{suffix}", Path(package.__file__).parent / "migrations")
            extra: dict[str, str] = {}
            if name == "identity":
                extra["census_hash_key"] = "edge-census-key-0123456789abcdef"
            if name == "consultations":
                extra["identity_grpc_target"] = identity_target
            services[name] = await stack.enter_async_context(
                running_service(
                    spec, settings_cls, database_url=url, nats_url=nats.url, issuer=issuer, workers=workers, **extra
                )
            )
            if name == "identity":
                identity_target = await stack.enter_async_context(grpc_server(spec, services[name]))
        headers = issuer.headers(roles=["registrar"], territories=["VE"])
        ids: dict[str, uuid.UUID] = {}
        for code, territory_name, kind, parent in TERRITORIES:
            response = await services["identity"].client.post(
                "/v1/territories",
                json={"code": code, "name": territory_name, "kind": kind, "parent_code": parent},
                headers=headers,
            )
            assert response.status_code == 201, response.text
            ids[code] = uuid.UUID(response.json()["id"])
        yield Platform(services=services, identity_grpc=identity_target, territory_ids=ids)
