"""Projects' migrations 0002 (the refusal columns and their constraints) and 0004 (execution
under oversight: existing projects and milestones carried over, the new invariants held by the
database), up and down.

That every migration matches the models and round-trips is tests/platform/test_migrations.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
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
                    "budget_minor, currency, status, started_at) "
                    "VALUES (:p, :a, :c, :k, 'VE.1', 't', 10, 'USD', 'in_execution', now())"
                ),
                {"p": uuid.uuid4(), "a": uuid.uuid4(), "c": uuid.uuid4(), "k": uuid.uuid4()},
            )
        for values in (
            "'pending', NULL, NULL, NULL, NULL, NULL, 'x', now()",
            "'verified', 'r', now(), 'o', now(), 'n', 'x', NULL",
        ):
            with pytest.raises(Exception, match="ck_milestones_rejection"):
                async with engine.begin() as conn:
                    project_id = (await conn.execute(text("SELECT id FROM projects LIMIT 1"))).scalar_one()
                    await conn.execute(
                        text(
                            "INSERT INTO milestones (id, project_id, sequence, title, tranche_minor, currency, due_on, "
                            "status, reported_by, reported_at, verified_by, verified_at, verification_note, "
                            "disbursement_rejected_reason, disbursement_rejected_at) "
                            f"VALUES (:m, :p, 1, 't', 10, 'USD', current_date, {values})"
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


LEGACY = {"in_progress": uuid.uuid4(), "completed": uuid.uuid4()}


async def _execute(url: str, *statements: tuple[str, dict[str, Any]]) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            results = [await conn.execute(text(sql), params) for sql, params in statements]
            return [result.all() if result.returns_rows else [] for result in results]
    finally:
        await engine.dispose()


async def _refused(url: str, sql: str, params: dict[str, Any], constraint: str) -> None:
    with pytest.raises(Exception, match=constraint):
        await _execute(url, (sql, params))


async def test_0004_carries_existing_projects_over_and_holds_the_new_invariants(
    embedded_postgres: EmbeddedPostgres,
) -> None:
    name = f"projects_mig4_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    url = embedded_postgres.dsn(name)
    config = alembic_config(MIGRATIONS, url)
    command.upgrade(config, "0003")
    # Before 0004: one project under way (first milestone funded, second verified, third
    # pending) and one completed, as the old flow left them.
    now = datetime.now(UTC)
    inserts = [
        (
            "INSERT INTO projects (id, allocation_id, consultation_id, commune_id, commune_code, title, "
            "budget_minor, currency, status, created_at, completed_at) "
            "VALUES (:p, :a, :c, :k, 'VE.1', 't', 100, 'USD', :s, :created, :completed)",
            {
                "p": project_id,
                "a": uuid.uuid4(),
                "c": uuid.uuid4(),
                "k": uuid.uuid4(),
                "s": status,
                "created": datetime(2026, 1, 10, tzinfo=UTC),
                "completed": now if status == "completed" else None,
            },
        )
        for status, project_id in LEGACY.items()
    ]
    legacy = LEGACY["in_progress"]
    for sequence, state in ((1, "funded"), (2, "verified"), (3, "pending")):
        attested, funded = state != "pending", state == "funded"
        inserts.append(
            (
                "INSERT INTO milestones (id, project_id, sequence, title, tranche_minor, currency, status, "
                "verified_by, verified_at, verification_note, funded_at, funded_minor, disbursement_id) "
                "VALUES (:m, :p, :n, :t, 40, 'USD', :s, :by, :at, :note, :funded_at, :funded, :disbursement)",
                {
                    "m": uuid.uuid4(),
                    "p": legacy,
                    "n": sequence,
                    "t": f"step {sequence}",
                    "s": state,
                    "by": "overseer" if attested else None,
                    "at": now if attested else None,
                    "note": "ok" if attested else None,
                    "funded_at": now if funded else None,
                    "funded": 40 if funded else None,
                    "disbursement": uuid.uuid4() if funded else None,
                },
            )
        )
    await _execute(url, *inserts)
    upgrade(MIGRATIONS, url)
    assert (await schema_diff(url, Base.metadata)) == []

    projects, milestones, revisions = await _execute(
        url,
        ("SELECT id, status, started_at IS NOT NULL, disbursed_minor FROM projects ORDER BY status", {}),
        (
            "SELECT sequence, status, reported_by, due_on FROM milestones WHERE project_id = :p ORDER BY sequence",
            {"p": legacy},
        ),
        ("SELECT project_id, revision, jsonb_array_length(milestones) FROM plan_revisions ORDER BY 3", {}),
    )
    assert [tuple(r) for r in projects] == [
        (LEGACY["completed"], "completed", True, 0),
        (legacy, "in_execution", True, 40),
    ]
    assert [(r[0], r[1], r[2]) for r in milestones] == [
        (1, "funded", "migration:0004"),
        (2, "verified", "migration:0004"),
        (3, "pending", None),
    ]
    assert [str(r[3]) for r in milestones] == ["2026-02-10", "2026-03-10", "2026-04-10"]
    assert {(r[0], r[1], r[2]) for r in revisions} == {(LEGACY["completed"], 1, 0), (legacy, 1, 3)}

    # What the database itself refuses from now on.
    await _refused(url, "UPDATE projects SET spent_minor = 41 WHERE id = :p", {"p": legacy}, "spent_within_disbursed")
    await _refused(
        url, "UPDATE projects SET disbursed_minor = 101 WHERE id = :p", {"p": legacy}, "disbursed_within_budget"
    )
    await _refused(
        url,
        "UPDATE milestones SET verified_by = reported_by WHERE project_id = :p AND sequence = 2",
        {"p": legacy},
        "four_eyes",
    )
    await _refused(
        url,
        "UPDATE milestones SET status = 'reported' WHERE project_id = :p AND sequence = 3",
        {"p": legacy},
        "ck_milestones_report",
    )
    await _refused(url, "UPDATE projects SET status = 'planned' WHERE id = :p", {"p": legacy}, "planned_not_started")
    await _refused(url, "UPDATE projects SET status = 'stalled' WHERE id = :p", {"p": legacy}, "stalled_since")
    request = (
        "INSERT INTO change_requests (id, project_id, base_revision, milestones, reason, requested_by, "
        "requested_at, state) VALUES (gen_random_uuid(), :p, 1, '[]', 'r', 'someone', now(), 'open')"
    )
    await _execute(url, (request, {"p": legacy}))
    await _refused(url, request, {"p": legacy}, "uq_change_requests_one_open")

    command.downgrade(config, "0003")
    (statuses,) = await _execute(url, ("SELECT status FROM projects ORDER BY status", {}))
    assert [r[0] for r in statuses] == ["completed", "in_progress"]
    upgrade(MIGRATIONS, url)
    assert (await schema_diff(url, Base.metadata)) == []
