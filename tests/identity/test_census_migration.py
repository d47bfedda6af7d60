"""Migration 0005 keeps the census of before: its hashes become key generation 1, its council a
residence since 1900-01-01; a re-import gives the records their roll base."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest
from sqlalchemy import text

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.domain.census import Census
from comuna_identity.domain.census_import import Preparer, import_residents
from comuna_identity.domain.census_keys import KeyRing
from comuna_platform.bulk import BulkRow
from comuna_platform.db import Database
from comuna_platform.documents import normalise_document
from comuna_platform.migrations import upgrade
from tests.identity.conftest import CENSUS_KEY, MIGRATIONS, ROLL_SECRET

pytestmark = pytest.mark.asyncio


async def one(row: BulkRow) -> AsyncIterator[BulkRow]:
    yield row


async def test_records_of_before_stay_findable_and_gain_a_roll_base(embedded_postgres: EmbeddedPostgres) -> None:
    name = f"identity_mig5_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    url = embedded_postgres.dsn(name)
    # Before the register with history (0004) and the census at scale (0005).
    upgrade(MIGRATIONS, url, "0003")
    ids = {code: uuid.uuid4() for code in ("VE", "VE.01", "VE.01.01", "VE.01.01.C1", "VE.01.01.C1.CC1")}
    tree = [
        ("VE", "country", None),
        ("VE.01", "state", "VE"),
        ("VE.01.01", "municipality", "VE.01"),
        ("VE.01.01.C1", "commune", "VE.01.01"),
        ("VE.01.01.C1.CC1", "communal_council", "VE.01.01.C1"),
    ]
    # The hash of before: HMAC(census key, "national-id:V12345678").
    old_hash = hmac.new(CENSUS_KEY.encode(), b"national-id:V12345678", hashlib.sha256).digest()
    db = Database(url)
    try:
        async with db.transaction() as session:
            for code, kind, parent in tree:
                await session.execute(
                    text(
                        "INSERT INTO territories (id, code, name, kind, parent_id)"
                        " VALUES (:id, :code, :code, :kind, :p)"
                    ),
                    {"id": ids[code], "code": code, "kind": kind, "p": ids[parent] if parent else None},
                )
            await session.execute(
                text(
                    "INSERT INTO residents (id, national_id_hash, birth_date, council_id, commune_id)"
                    " VALUES (:id, :h, DATE '1970-03-04', :council, :commune)"
                ),
                {"id": uuid.uuid4(), "h": old_hash, "council": ids["VE.01.01.C1.CC1"], "commune": ids["VE.01.01.C1"]},
            )
        await db.dispose()
        upgrade(MIGRATIONS, url)
        db = Database(url)
        census = Census(KeyRing({1: CENSUS_KEY.encode()}, 1), ROLL_SECRET.encode())
        async with db.transaction() as session:
            found = await census.find(session, "v-12.345.678")
            assert found is not None
            assert (found.document_key_id, found.status, found.status_since, found.roll_base) == (
                1,
                "active",
                date(1900, 1, 1),
                None,
            )
            residence = (
                await session.execute(text("SELECT council_id, valid_from, valid_until FROM resident_residences"))
            ).one()
            assert tuple(residence) == (ids["VE.01.01.C1.CC1"], date(1900, 1, 1), None)
        fields = {
            "document_type": "V",
            "document_number": "12345678",
            "birth_date": "1970-03-04",
            "council_code": "VE.01.01.C1.CC1",
            "valid_from": "2020-01-01",
        }
        async with db.transaction() as session:
            report = await import_residents(
                session, census, Preparer(census, 1), one(BulkRow(2, fields)), actor="test", today=date(2026, 12, 1)
            )
        assert (report.created, report.updated, report.moved) == (0, 1, 0)
        async with db.transaction() as session:
            refreshed = await census.find(session, "V12345678")
            assert refreshed is not None and refreshed.id == found.id
            assert refreshed.roll_base == census.roll_base(normalise_document("V12345678"))
    finally:
        await db.dispose()
