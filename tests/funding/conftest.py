"""Funding under test: a migrated database per module, and the service wired as `serve` wires it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

import comuna_funding
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.service import SPEC
from comuna_funding.settings import Settings
from comuna_platform.db import Database
from comuna_platform.events.streams import ensure_stream
from tests.support.identity import Identity, running_identity
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

MIGRATIONS = Path(comuna_funding.__file__).parent / "migrations"


@pytest.fixture(scope="module")
def funding_db_url(embedded_postgres: EmbeddedPostgres) -> str:
    return fresh_database(embedded_postgres, f"funding_{uuid.uuid4().hex[:12]}", MIGRATIONS)


@pytest_asyncio.fixture(scope="module")
async def db(funding_db_url: str) -> AsyncIterator[Database]:
    database = Database(funding_db_url, pool_size=30)
    try:
        yield database
    finally:
        await database.dispose()


@pytest_asyncio.fixture(scope="module")
async def js(embedded_nats: EmbeddedNats) -> AsyncIterator[JetStreamContext]:
    """A JetStream client, with the upstream streams funding consumes from already created."""
    nc = await nats.connect(embedded_nats.url)
    context = nc.jetstream()
    for service in ("consultations", "projects"):
        await ensure_stream(context, service)
    try:
        yield context
    finally:
        await nc.close()


@pytest_asyncio.fixture(scope="module")
async def identity(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Identity]:
    """The real identity funding asks who may use its protected endpoints (parked messages)."""
    async with running_identity(embedded_postgres, embedded_nats, issuer, f"f_{uuid.uuid4().hex[:10]}") as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def funding(
    funding_db_url: str, embedded_nats: EmbeddedNats, issuer: TestIssuer, js: JetStreamContext, identity: Identity
) -> AsyncIterator[RunningService]:
    async with running_service(
        SPEC,
        Settings,
        database_url=funding_db_url,
        nats_url=embedded_nats.url,
        issuer=issuer,
        identity_grpc_target=identity.grpc_target,
    ) as service:
        yield service
