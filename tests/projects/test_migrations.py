"""Projects' migration 0002: the refusal columns and their constraints, up and down.

That every migration matches the models and round-trips is tests/platform/test_migrations.py."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import comuna_projects
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.migrations import alembic_config, upgrade
from comuna_projects.storage.models import Base
from tests.support.migrations import schema_diff

pytestmark = pytest.mark.asyncio

MIGRATIONS = Path(comuna_projects.__file__).parent / "migrations"
REFUSAL_COLUMNS = {"disbursement_rejected_reason", "disbursement_rejected_at"}


async def _inspect(url: str) -> tuple[list[Any], set[str], set[str]]:
    """(differences from the models, milestone columns, milestone check constraints)."""
    diff = await schema_diff(url, Base.metadata)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            columns = set(
                (
                    await conn.execute(
                        text("SELECT column_name FROM information_schema.columns WHERE table_name = 'milestones'")
                    )
                ).scalars()
            )
            checks = set(
                (
                    await conn.execute(
                        text(
                            "SELECT conname FROM pg_constraint "
                            "WHERE conrelid = 'milestones'::regclass AND contype = 'c'"
                        )
                    )
                ).scalars()
            )
    finally:
        await engine.dispose()
    return diff, columns, checks


async def test_migrations_match_models_and_round_trip(embedded_postgres: EmbeddedPostgres) -> None:
    name = f"projects_mig_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    url = embedded_postgres.dsn(name)
    upgrade(MIGRATIONS, url)
    diff, columns, checks = await _inspect(url)
    assert diff == []
    assert columns >= REFUSAL_COLUMNS
    assert {"ck_milestones_rejection_fields", "ck_milestones_rejection_status"} <= checks

    # A milestone refused while pending, or with a reason but no time, is refused by the database.
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO projects (id, allocation_id, consultation_id, commune_id, commune_code, title, "
                    "budget_minor, currency, status) VALUES (:p, :a, :c, :k, 'VE.1', 't', 10, 'USD', 'in_progress')"
                ),
                {"p": uuid.uuid4(), "a": uuid.uuid4(), "c": uuid.uuid4(), "k": uuid.uuid4()},
            )
        for values in ("'pending', NULL, NULL, NULL, 'x', now()", "'verified', 'o', now(), 'n', 'x', NULL"):
            with pytest.raises(Exception, match="ck_milestones_rejection"):
                async with engine.begin() as conn:
                    project_id = (await conn.execute(text("SELECT id FROM projects LIMIT 1"))).scalar_one()
                    await conn.execute(
                        text(
                            "INSERT INTO milestones (id, project_id, sequence, title, tranche_minor, currency, status, "
                            "verified_by, verified_at, verification_note, disbursement_rejected_reason, "
                            f"disbursement_rejected_at) VALUES (:m, :p, 1, 't', 10, 'USD', {values})"
                        ),
                        {"m": uuid.uuid4(), "p": project_id},
                    )
    finally:
        await engine.dispose()

    command.downgrade(alembic_config(MIGRATIONS, url), "0001")
    _, columns, checks = await _inspect(url)
    assert not columns & REFUSAL_COLUMNS and not {c for c in checks if "rejection" in c}
    command.downgrade(alembic_config(MIGRATIONS, url), "base")
    upgrade(MIGRATIONS, url)
    assert (await _inspect(url))[0] == []
