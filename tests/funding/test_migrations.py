"""The hand-written migration matches the models, installs the guards, and downgrades cleanly."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.storage.models import Base
from comuna_platform.migrations import alembic_config, upgrade
from tests.funding.conftest import MIGRATIONS
from tests.support.migrations import schema_diff

pytestmark = pytest.mark.asyncio

TRIGGERS = {
    "transfers_immutable",
    "transfers_no_truncate",
    "accounts_no_delete",
    "accounts_no_truncate",
    "accounts_guard",
    "accounts_postings_balanced",
}


async def _inspect(url: str) -> tuple[list[Any], set[str], set[str]]:
    diff = await schema_diff(url, Base.metadata)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            triggers = set((await conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))).scalars())
            tables = set(
                (await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).scalars()
            )
    finally:
        await engine.dispose()
    return diff, triggers, tables


async def test_migration_matches_models_and_round_trips(embedded_postgres: EmbeddedPostgres) -> None:
    name = f"funding_mig_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    url = embedded_postgres.dsn(name)
    upgrade(MIGRATIONS, url)
    diff, triggers, tables = await _inspect(url)
    assert diff == []
    assert triggers == TRIGGERS
    assert {"accounts", "transfers", "allocations", "disbursements", "outbox_events", "inbox_events"} <= tables

    command.downgrade(alembic_config(MIGRATIONS, url), "base")
    _, triggers, tables = await _inspect(url)
    assert triggers == set() and tables == {"alembic_version"}
    upgrade(MIGRATIONS, url)
    assert (await _inspect(url))[0] == []
