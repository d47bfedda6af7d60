from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

import comuna_identity
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.service import SPEC
from comuna_identity.settings import Settings
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

MIGRATIONS = Path(comuna_identity.__file__).parent / "migrations"
CENSUS_KEY = "test-census-key-0123456789abcdef"
ROLL_SECRET = "test-roll-secret-0123456789abcdef-0123"


@pytest_asyncio.fixture(scope="module")
async def identity(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer, request: object
) -> AsyncIterator[RunningService]:
    url = fresh_database(embedded_postgres, f"identity_{id(request)}", MIGRATIONS)
    async with running_service(
        SPEC,
        Settings,
        database_url=url,
        nats_url=embedded_nats.url,
        issuer=issuer,
        census_hash_key=CENSUS_KEY,
        roll_secret=ROLL_SECRET,
    ) as service:
        yield service
