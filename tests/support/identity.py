"""A real identity service (REST + gRPC) for the other services' tests, and the authority of test people.

The services ask identity where a caller may act (`ResolvePrincipal` over gRPC, with their own
client-credentials token) and drop cached answers on identity's `identity.role_assignment.*`
events, so their tests need the real thing. People are granted assignments directly in
identity's database with `ensure_assignment` (as the seed does: the REST API itself requires an
existing authority); their tokens carry only a subject.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import comuna_identity
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.domain import access
from comuna_identity.service import SPEC as IDENTITY
from comuna_identity.settings import Settings as IdentitySettings
from comuna_platform.auth.access import Assignment, Caller
from comuna_platform.auth.principal import Principal
from comuna_platform.auth.roles import Role
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

IDENTITY_MIGRATIONS = Path(comuna_identity.__file__).parent / "migrations"
COUNTRY = "VE"
# Revocations in tests are made by this (bootstrap) operator.
REVOKER = "test-revoker"

# (code, name, kind, parent) of a small country: two communes and a communal circuit.
TERRITORIES = [
    ("VE", "Venezuela", "country", None),
    ("VE.01", "Lara", "state", "VE"),
    ("VE.01.01", "Iribarren", "municipality", "VE.01"),
    ("VE.01.02", "Palavecino", "municipality", "VE.01"),
    ("VE.01.01.C1", "Comuna Uno", "commune", "VE.01.01"),
    ("VE.01.01.C1.CC1", "Consejo Uno", "communal_council", "VE.01.01.C1"),
    ("VE.01.01.C2", "Comuna Dos", "commune", "VE.01.01"),
    ("VE.01.01.C2.CC1", "Consejo Dos", "communal_council", "VE.01.01.C2"),
    ("VE.01.02.C3", "Circuito Tres", "communal_circuit", "VE.01.02"),
    ("VE.01.02.C3.CC1", "Consejo Tres", "communal_council", "VE.01.02.C3"),
]


def subject_of(role: Role, code: str, consultation_id: object | None = None, table_code: str | None = None) -> str:
    """A deterministic subject for the holder of one assignment: a UUID named by it (Keycloak
    user ids have at most 36 characters)."""
    table = f"#{consultation_id}/{table_code}" if consultation_id is not None else ""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"comuna-test:{role}@{code}{table}"))


def person(issuer: TestIssuer, subject: str, **claims: Any) -> dict[str, str]:
    """Headers of a person's token: a subject and no roles (identity decides where they act)."""
    return issuer.headers(subject=subject, roles=[], **claims)


@dataclass
class Identity:
    service: RunningService
    grpc_target: str
    issuer: TestIssuer
    # code -> id of the seeded territories
    territory_ids: dict[str, uuid.UUID]
    # One grant at a time: concurrent requests of a test may ask for the same person at once.
    _granting: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def grant(self, subject: str, role: Role, code: str, **terms: Any) -> None:
        """`ensure_assignment` as the seed runs it (a no-op if the same live one exists)."""
        async with self._granting, self.service.runtime.db.unit_of_work() as uow:
            await access.ensure_assignment(uow, subject=subject, role=role, territory_code=code, **terms)

    async def headers(self, role: Role, code: str, **terms: Any) -> dict[str, str]:
        """Headers of the person holding (after this call) `role` at `code`, and only that."""
        subject = subject_of(role, code, terms.get("consultation_id"), terms.get("table_code"))
        await self.grant(subject, role, code, **terms)
        return person(self.issuer, subject)

    async def revoke_all(self, subject: str, reason: str = "test") -> float:
        """Revoke every assignment of `subject` through identity's use case (which stages the
        `identity.role_assignment.revoked` events); returns `time.monotonic()` at commit."""
        revoker = Caller(
            Principal(subject=REVOKER, username=None, roles=frozenset(), client_id=None),
            (Assignment(Role.OPERATOR, COUNTRY, national=True),),
        )
        async with self.service.runtime.db.unit_of_work() as uow:
            resolution = (await access.resolve(uow, subject)).resolution()
            for assignment in resolution.assignments:
                await access.revoke(uow, revoker, uuid.UUID(assignment.assignment_id), reason=reason)
        return time.monotonic()


async def seed_territories(
    identity: RunningService, territories: Iterable[tuple[str, str, str, str | None]]
) -> dict[str, uuid.UUID]:
    """Register the territories (idempotent); returns code -> id."""
    async with identity.runtime.db.unit_of_work() as uow:
        for code, name, kind, parent in territories:
            await access.ensure_territory(uow, code=code, name=name, kind=kind, parent_code=parent)
    response_ids: dict[str, uuid.UUID] = {}
    for code, *_ in territories:
        response = await identity.client.get(f"/v1/territories/{code}")
        assert response.status_code == 200, response.text
        response_ids[code] = uuid.UUID(response.json()["id"])
    return response_ids


@asynccontextmanager
async def running_identity(
    embedded_postgres: EmbeddedPostgres,
    embedded_nats: EmbeddedNats,
    issuer: TestIssuer,
    suffix: str,
    territories: Iterable[tuple[str, str, str, str | None]] = TERRITORIES,
) -> AsyncIterator[Identity]:
    """Identity on its own fresh database, its territories seeded, its gRPC API on a free port."""
    url = fresh_database(embedded_postgres, f"identity_{suffix}", IDENTITY_MIGRATIONS)
    async with running_service(
        IDENTITY,
        IdentitySettings,
        database_url=url,
        nats_url=embedded_nats.url,
        issuer=issuer,
        census_hash_key="x" * 32,
        roll_secret="y" * 32,
        # The tests' one registrar registers residents far more often than a person would
        # (registering is a lookup by document); tests/identity/test_rate_limits.py tests the limit.
        rate_limit_document_lookups_burst=10_000,
    ) as service:
        ids = await seed_territories(service, list(territories))
        async with grpc_server(IDENTITY, service) as target:
            yield Identity(service, target, issuer, ids)
