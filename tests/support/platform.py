"""All four services in-process on the session's PostgreSQL and NATS, for tests that go
through every service's edges (input safety, fuzzing): identity seeded with a small territory
and its gRPC API on a real port, the other services wired to it (census, ResolvePrincipal).
People act through assignments in identity (`OPERATOR`, `REGISTRAR`, ...), tokens carry a subject."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.domain import access
from comuna_platform.auth.roles import Role
from tests.support.grpc_server import grpc_server
from tests.support.identity import seed_territories, subject_of
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
# Who holds what in identity, granted before the services serve (subject -> role, territory).
OPERATOR = subject_of(Role.OPERATOR, "VE")
REGISTRAR = subject_of(Role.REGISTRAR, "VE")
AUDITOR = subject_of(Role.AUDITOR, "VE")
SPOKESPERSON = subject_of(Role.SPOKESPERSON, "VE.01.01.C1")
OVERSEER = subject_of(Role.OVERSEER, "VE.01.01.C1")
# Every role this territory can hold at once (fuzzing gets past the role checks with it).
EVERYTHING = "everything"
PEOPLE_WITH_MANY_ROLES = {
    EVERYTHING: [
        (Role.OPERATOR, "VE"),
        (Role.REGISTRAR, "VE"),
        (Role.SPOKESPERSON, "VE.01.01.C1"),
        (Role.OVERSEER, "VE.01.01.C1"),
    ]
}
PEOPLE = {
    OPERATOR: (Role.OPERATOR, "VE"),
    REGISTRAR: (Role.REGISTRAR, "VE"),
    AUDITOR: (Role.AUDITOR, "VE"),
    SPOKESPERSON: (Role.SPOKESPERSON, "VE.01.01.C1"),
    OVERSEER: (Role.OVERSEER, "VE.01.01.C1"),
}


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
                extra["roll_secret"] = "edge-roll-secret-0123456789abcdef0123"
            if name != "identity":
                extra["identity_grpc_target"] = identity_target
            if name == "consultations":
                # Offline tables' snapshots are signed (any 32-byte seed will do here).
                extra["snapshot_signing_key"] = "ZWRnZS1zbmFwc2hvdC1zaWduaW5nLWtleS0zMmJ5dGU="
                extra["voter_ref_secret"] = "edge-voter-ref-secret-" + "e" * 32
            services[name] = await stack.enter_async_context(
                running_service(
                    spec, settings_cls, database_url=url, nats_url=nats.url, issuer=issuer, workers=workers, **extra
                )
            )
            if name == "identity":
                identity_target = await stack.enter_async_context(grpc_server(spec, services[name]))
                ids = await seed_territories(services[name], TERRITORIES)
                async with services[name].runtime.db.unit_of_work() as uow:
                    for subject, (role, code) in PEOPLE.items():
                        await access.ensure_assignment(uow, subject=subject, role=role, territory_code=code)
                    for subject, held in PEOPLE_WITH_MANY_ROLES.items():
                        for role, code in held:
                            await access.ensure_assignment(uow, subject=subject, role=role, territory_code=code)
        yield Platform(services=services, identity_grpc=identity_target, territory_ids=ids)
