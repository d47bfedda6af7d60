"""Re-keying the census while it is in use, against real PostgreSQL: every record is found before,
during and after; nobody is lost or registered twice; writers go on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date

import pytest
from sqlalchemy import text

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.domain import census_rotation, register
from comuna_identity.domain.census import Census
from comuna_identity.domain.census_import import Preparer, import_residents
from comuna_identity.domain.census_keys import KeyRing, message_of, parse_ring
from comuna_platform.bulk import BulkRow
from comuna_platform.db import Database
from comuna_platform.documents import normalise_document
from comuna_platform.errors import Unavailable
from tests.identity.conftest import CENSUS_KEY, MIGRATIONS, ROLL_SECRET
from tests.support.service import fresh_database

COUNCIL = "VE.01.01.C1.CC1"
TODAY = date(2026, 12, 1)
NEW_KEY = "second-census-key-fedcba9876543210"


def rows_of(numbers: Sequence[int], council: str = COUNCIL) -> list[BulkRow]:
    return [
        BulkRow(
            i + 2,
            {
                "document_type": "V",
                "document_number": str(n),
                "birth_date": "1970-01-01",
                "council_code": council,
                "valid_from": "2020-01-01",
            },
        )
        for i, n in enumerate(numbers)
    ]


async def aiter(rows: list[BulkRow]) -> AsyncIterator[BulkRow]:
    for row in rows:
        yield row


async def seed_register(db: Database) -> None:
    tree = [
        ("VE", "Venezuela", "country", None),
        ("VE.01", "Lara", "state", "VE"),
        ("VE.01.01", "Iribarren", "municipality", "VE.01"),
        ("VE.01.01.C1", "Comuna Uno", "commune", "VE.01.01"),
        (COUNCIL, "Consejo Uno", "communal_council", "VE.01.01.C1"),
    ]
    for code, name, kind, parent in tree:
        async with db.unit_of_work() as uow:
            await register.ensure_territory(uow, code=code, name=name, kind=kind, parent_code=parent)


async def import_numbers(db: Database, census: Census, numbers: Sequence[int]) -> int:
    async with db.transaction() as session:
        report = await import_residents(
            session, census, Preparer(census, 1), aiter(rows_of(numbers)), actor="test", today=TODAY
        )
    return report.created


async def find(db: Database, census: Census, number: int) -> uuid.UUID | None:
    async with db.transaction() as session:
        resident = await census.find(session, f"V{number}")
    return None if resident is None else resident.id


async def per_generation(db: Database) -> dict[int, int]:
    async with db.transaction() as session:
        rows = await session.execute(text("SELECT document_key_id, count(*) FROM residents GROUP BY 1"))
        return {int(k): int(n) for k, n in rows.all()}


def test_the_hash_message_is_the_one_of_before_key_ids() -> None:
    # Records written before key ids stay valid as generation 1: same message, same key.
    assert message_of(normalise_document("v-12.345.678")) == b"national-id:V12345678"
    assert message_of(normalise_document("ab123456", "P")) == b"national-id:PAB123456"


def test_the_ring_takes_the_single_key_of_before_as_key_1() -> None:
    ring = parse_ring(json.dumps({"2": NEW_KEY}), CENSUS_KEY, None)
    assert (sorted(ring.keys), ring.current) == ([1, 2], 2)
    assert CENSUS_KEY not in repr(ring) and NEW_KEY not in repr(ring)
    with pytest.raises(ValueError, match="differ"):
        parse_ring(json.dumps({"1": NEW_KEY}), CENSUS_KEY, None)
    with pytest.raises(ValueError, match="not in the ring"):
        parse_ring("", CENSUS_KEY, 3)
    with pytest.raises(ValueError, match="JSON"):
        parse_ring("1=abc", "", None)


@pytest.mark.asyncio
async def test_rotation_keeps_every_record_findable_while_writers_go_on(embedded_postgres: EmbeddedPostgres) -> None:
    db = Database(fresh_database(embedded_postgres, f"identity_rotation_{uuid.uuid4().hex[:8]}", MIGRATIONS))
    try:
        await seed_register(db)
        old = Census(KeyRing({1: CENSUS_KEY.encode()}, 1), ROLL_SECRET.encode())
        # Phase 1 of a rotation: every process gets the new key, the current id stays 1.
        both_at_1 = Census(KeyRing({1: CENSUS_KEY.encode(), 2: NEW_KEY.encode()}, 1), ROLL_SECRET.encode())
        # Phase 2: the current id is 2; the rotation worker activates it and re-keys.
        rotating = Census(KeyRing({1: CENSUS_KEY.encode(), 2: NEW_KEY.encode()}, 2), ROLL_SECRET.encode())
        first = list(range(50_000_000, 50_000_400))
        assert await import_numbers(db, old, first) == 400
        ids = {n: await find(db, both_at_1, n) for n in first[:20]}
        assert None not in ids.values()
        assert await census_rotation.rotate_step(db, both_at_1, 50) == 0  # nothing to do before phase 2

        found_throughout = True
        done = asyncio.Event()

        async def rotate() -> int:
            moved = 0
            while (step := await census_rotation.rotate_step(db, rotating, 13)) != 0:
                moved += max(step, 0)
            done.set()
            return moved

        async def look_up() -> int:
            nonlocal found_throughout
            rounds = 0
            while not done.is_set() or rounds == 0:
                for n, resident_id in ids.items():
                    found_throughout = found_throughout and await find(db, rotating, n) == resident_id
                rounds += 1
            return rounds

        async def write() -> tuple[int, int]:
            created = again = 0
            batch = 0
            while not done.is_set() or batch == 0:
                fresh = list(range(51_000_000 + batch * 10, 51_000_000 + batch * 10 + 10))
                created += await import_numbers(db, rotating, fresh)
                # People already in the census, under whichever generation: found, not added again.
                again += await import_numbers(db, rotating, first[batch * 5 : batch * 5 + 5])
                batch += 1
            return created, again

        moved, rounds, (created, again) = await asyncio.gather(rotate(), look_up(), write())
        assert found_throughout and rounds >= 1
        assert again == 0
        assert moved >= 400
        assert await per_generation(db) == {2: 400 + created}
        for n, resident_id in ids.items():
            assert await find(db, rotating, n) == resident_id
        progress = await census_rotation.progress(db, rotating)
        assert progress.done and progress.as_json()["residents_per_key_id"] == {"2": 400 + created}

        # A process still holding only the old key refuses instead of silently finding nobody.
        with pytest.raises(Unavailable):
            await find(db, old, first[0])
        # A process whose key 2 is another secret is refused too.
        wrong = Census(KeyRing({1: CENSUS_KEY.encode(), 2: b"not-the-second-key-0123456789"}, 2), ROLL_SECRET.encode())
        with pytest.raises(Unavailable):
            await find(db, wrong, first[0])
    finally:
        await db.dispose()
