"""A real identity service (REST + gRPC) and the consultations service wired to it.

Both run in-process against the session's PostgreSQL and NATS, exactly as `serve` wires them:
consultations fetches a client-credentials token from the test issuer and calls identity's gRPC
server over TCP.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest_asyncio

import comuna_consultations
import comuna_identity
from comuna_consultations.service import SPEC as CONSULTATIONS
from comuna_consultations.settings import Settings as ConsultationsSettings
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.service import SPEC as IDENTITY
from comuna_identity.settings import Settings as IdentitySettings
from tests.consultations.helpers import Stack
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

CONSULTATIONS_MIGRATIONS = Path(comuna_consultations.__file__).parent / "migrations"
IDENTITY_MIGRATIONS = Path(comuna_identity.__file__).parent / "migrations"

# Communes of the test country. C3 is a communal circuit (takes part like a commune).
COMMUNES = ("VE.01.01.C1", "VE.01.01.C2", "VE.01.02.C3")
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


async def seed_identity(identity: RunningService, issuer: TestIssuer) -> dict[str, uuid.UUID]:
    headers = issuer.headers(roles=["registrar"], territories=["VE"])
    ids = {}
    for code, name, kind, parent in TERRITORIES:
        response = await identity.client.post(
            "/v1/territories", json={"code": code, "name": name, "kind": kind, "parent_code": parent}, headers=headers
        )
        assert response.status_code == 201, response.text
        ids[code] = uuid.UUID(response.json()["id"])
    return {code: ids[code] for code in COMMUNES}


@pytest_asyncio.fixture(scope="module")
async def stack(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Stack]:
    async with open_stack(embedded_postgres, embedded_nats, issuer, uuid.uuid4().hex[:10]) as stack:
        yield stack


@asynccontextmanager
async def open_stack(
    embedded_postgres: EmbeddedPostgres,
    embedded_nats: EmbeddedNats,
    issuer: TestIssuer,
    suffix: str,
) -> AsyncIterator[Stack]:
    identity_url = fresh_database(embedded_postgres, f"c_identity_{suffix}", IDENTITY_MIGRATIONS)
    consultations_url = fresh_database(embedded_postgres, f"consultations_{suffix}", CONSULTATIONS_MIGRATIONS)
    async with running_service(
        IDENTITY,
        IdentitySettings,
        database_url=identity_url,
        nats_url=embedded_nats.url,
        issuer=issuer,
        census_hash_key="x" * 32,
    ) as identity:
        commune_ids = await seed_identity(identity, issuer)
        async with (
            grpc_server(IDENTITY, identity) as target,
            running_service(
                CONSULTATIONS,
                ConsultationsSettings,
                database_url=consultations_url,
                nats_url=embedded_nats.url,
                issuer=issuer,
                identity_grpc_target=target,
            ) as consultations,
        ):
            yield Stack(identity, consultations, commune_ids, itertools.count(10_000_000))
