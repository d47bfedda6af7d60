"""Migration 0004 turns each existing territory into one open version from 1900-01-01, and the
database refuses overlapping versions of one unit."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.migrations import upgrade
from tests.identity.conftest import MIGRATIONS

pytestmark = pytest.mark.asyncio


async def test_existing_rows_become_one_version_each_and_overlaps_are_refused(
    embedded_postgres: EmbeddedPostgres,
) -> None:
    name = f"identity_mig0004_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    url = embedded_postgres.dsn(name)
    upgrade(MIGRATIONS, url, "0003")
    root, state = uuid.uuid4(), uuid.uuid4()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO territories (id, code, name, kind, parent_id) VALUES"
                    " (:root, 'VE', 'Venezuela', 'country', NULL), (:state, 'VE.01', 'Lara', 'state', :root)"
                ),
                {"root": root, "state": state},
            )
        upgrade(MIGRATIONS, url)
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT t.code, v.name, v.kind, v.parent_id, v.status, v.valid_from::text, v.valid_until"
                        " FROM territories t JOIN territory_versions v ON v.territory_id = t.id ORDER BY t.code"
                    )
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("VE", "Venezuela", "country", None, "active", "1900-01-01", None),
            ("VE.01", "Lara", "state", root, "active", "1900-01-01", None),
        ]
        # A second version that overlaps the open one is refused by the database itself.
        with pytest.raises(IntegrityError, match="ex_territory_versions_overlap"):
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO territory_versions (id, territory_id, valid_from, name, kind, parent_id)"
                        " VALUES (:id, :state, DATE '2020-01-01', 'Lara', 'state', :root)"
                    ),
                    {"id": uuid.uuid4(), "state": state, "root": root},
                )
    finally:
        await engine.dispose()
