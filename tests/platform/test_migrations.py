"""Every service's migrations build exactly its models, and round-trip down to nothing and back."""

from __future__ import annotations

import importlib
import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.migrations import alembic_config, upgrade
from tests.support.migrations import schema_diff

pytestmark = pytest.mark.asyncio


async def public_tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            return set(rows.scalars())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", ["identity", "consultations", "funding", "projects"])
async def test_migrations_match_models_and_round_trip(embedded_postgres: EmbeddedPostgres, service: str) -> None:
    package = importlib.import_module(f"comuna_{service}")
    metadata = importlib.import_module(f"comuna_{service}.storage.models").Base.metadata
    migrations = Path(package.__file__).parent / "migrations"
    name = f"{service}_mig_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    url = embedded_postgres.dsn(name)

    upgrade(migrations, url)
    assert await schema_diff(url, metadata) == []
    assert {"outbox_events", "inbox_events"} <= await public_tables(url)

    command.downgrade(alembic_config(migrations, url), "base")
    assert await public_tables(url) == {"alembic_version"}
    upgrade(migrations, url)
    assert await schema_diff(url, metadata) == []
