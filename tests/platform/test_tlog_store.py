"""The transparency log in PostgreSQL: gap-free sequencing under concurrency and rollbacks,
integration in chunks across tile boundaries, tree heads, proofs and tiles equal to the RFC's,
and a second log in the same tables untouched by the first."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from sqlalchemy import MetaData, select, update

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.db import Database
from comuna_platform.tlog import merkle, note, tiles
from comuna_platform.tlog.checkpoint import Checkpoint, parse_checkpoint
from comuna_platform.tlog.store import LogTables, TransparencyLog, define_tables
from tests.unit.tlog.test_merkle import mth

pytestmark = pytest.mark.asyncio

metadata = MetaData()
TABLES: LogTables = define_tables(metadata)


@pytest_asyncio.fixture(scope="module")
async def db(embedded_postgres: EmbeddedPostgres) -> AsyncIterator[Database]:
    name = f"tlog_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    database = Database(embedded_postgres.dsn(name))
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


async def new_log(db: Database) -> TransparencyLog:
    return TransparencyLog(TABLES, f"test.example/{uuid.uuid4().hex[:8]}")


def entry(i: int) -> bytes:
    return f"entry {i}".encode()


async def test_a_log_grows_in_chunks_and_every_head_proof_and_tile_is_the_rfcs(db: Database) -> None:
    log = await new_log(db)
    other = await new_log(db)
    written: list[bytes] = []
    for count in (1, 255, 1, 300, 65_000, 4_443):  # crosses level-0 and level-1 tile boundaries
        batch = [entry(len(written) + i) for i in range(count)]
        async with db.engine.begin() as conn:
            assert await log.sequence(conn, batch) == len(written)
            await other.sequence(conn, [b"other"])
        written += batch
    heads: list[tuple[int, bytes]] = []
    async with db.engine.begin() as conn:
        assert await log.sizes(conn) == (70_000, 0)
        integrated = 0
        for limit in (1, 256, 3, 40_000, 100_000):
            integrated = await log.integrate(conn, limit=limit)
            head = await log.tree_head(conn, integrated)
            assert head == mth(written[:integrated])
            heads.append((integrated, head))
        assert integrated == 70_000
        assert await log.integrate(conn) == 70_000  # nothing left: no change
        for (old_size, old_root), (size, root) in itertools.pairwise(heads):
            proof = await log.consistency_proof(conn, old_size, size)
            merkle.verify_consistency(old_size, old_root, size, root, proof)
        size, root = heads[-1]
        for index in (0, 255, 256, 65_535, 65_536, 69_999):
            proof = await log.inclusion_proof(conn, index, size)
            merkle.verify_inclusion(merkle.leaf_hash(written[index]), index, size, proof, root)
        # Every tile of the final tree, and a partial tile of an earlier head, as the spec has them.
        leaves = [merkle.leaf_hash(e) for e in written]
        for tile in tiles.tiles_for_size(size):
            assert tile.level is not None
            expected_hashes = [mth(written[a:b]) for a, b in _spans(tile)]
            assert await log.read_tile(conn, tile) == b"".join(expected_hashes), tile.path
        assert await log.read_tile(conn, tiles.Tile(0, 1, 1)) == leaves[256]
        assert await log.read_tile(conn, tiles.Tile(0, 273)) is None  # not full yet
        bundle = await log.read_bundle(conn, tiles.Tile(None, 273, 112), size)
        assert bundle is not None and tiles.decode_bundle(bundle) == written[273 * 256 :]
        assert await log.read_bundle(conn, tiles.Tile(None, 274, 1), size) is None
        # The other log is its own tree.
        assert await other.sizes(conn) == (6, 0)
        assert await other.integrate(conn) == 6
        assert await other.tree_head(conn, 6) == mth([b"other"] * 6)


def _spans(tile: tiles.Tile) -> list[tuple[int, int]]:
    assert tile.level is not None
    width = 1 << (tiles.TILE_HEIGHT * tile.level)
    return [(i * width, (i + 1) * width) for i in tile.positions]


async def test_concurrent_appenders_get_consecutive_gap_free_indices_and_rollbacks_leave_no_gap(
    db: Database,
) -> None:
    log = await new_log(db)

    async def append(n: int, commit: bool) -> int | None:
        async with db.engine.connect() as conn:
            transaction = await conn.begin()
            start = await log.sequence(conn, [f"{n}-{i}".encode() for i in range(n % 7 + 1)])
            await asyncio.sleep(0)
            if commit:
                await transaction.commit()
                return start
            await transaction.rollback()
            return None

    starts = await asyncio.gather(*(append(n, commit=n % 5 != 0) for n in range(40)))
    async with db.engine.begin() as conn:
        size, _ = await log.sizes(conn)
        rows = (
            await conn.execute(
                select(TABLES.entries.c.idx, TABLES.entries.c.data)
                .where(TABLES.entries.c.origin == log.origin)
                .order_by(TABLES.entries.c.idx)
            )
        ).all()
    committed = [n for n in range(40) if n % 5 != 0]
    assert size == sum(n % 7 + 1 for n in committed) == len(rows)
    assert [r.idx for r in rows] == list(range(size))
    for n, start in zip(range(40), starts, strict=True):
        if start is not None:  # each transaction's entries are together, in its order
            assert [r.data for r in rows[start : start + n % 7 + 1]] == [f"{n}-{i}".encode() for i in range(n % 7 + 1)]


async def test_integration_refuses_tiles_that_are_not_where_it_left_them(db: Database) -> None:
    log = await new_log(db)
    async with db.engine.begin() as conn:
        await log.sequence(conn, [entry(i) for i in range(10)])
        await log.integrate(conn)
        await log.sequence(conn, [entry(10)])
        await conn.execute(
            update(TABLES.tiles).where(TABLES.tiles.c.origin == log.origin).values(hashes=b"\x00" * 32 * 3)
        )
        with pytest.raises(RuntimeError, match="not where integration left it"):
            await log.integrate(conn)


async def test_an_entry_too_large_for_a_bundle_is_refused_and_an_empty_log_has_size_zero(db: Database) -> None:
    log = await new_log(db)
    async with db.engine.begin() as conn:
        with pytest.raises(ValueError):
            await log.sequence(conn, [b"x" * 70_000])
        assert await log.sizes(conn) == (0, 0)
        assert await log.integrate(conn) == 0
        assert await log.latest_checkpoint(conn) is None


async def test_checkpoints_sign_the_integrated_head_once_per_size_with_every_key(db: Database) -> None:
    log = await new_log(db)
    old, new = note.Signer.generate(log.origin), note.Signer.generate(log.origin)
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        await log.sequence(conn, [entry(i) for i in range(300)])
        first = await log.checkpoint(conn, [old], now)
        text, valid = note.open_note(first, [old.verifier])
        assert valid == [old.verifier]
        assert parse_checkpoint(text) == Checkpoint(log.origin, 300, mth([entry(i) for i in range(300)]))
        # The same size again: the stored checkpoint, even with other keys (no second root).
        assert await log.checkpoint(conn, [old, new], now) == first
        await log.sequence(conn, [entry(300)])
        second = await log.checkpoint(conn, [old, new], now)
        assert note.open_note(second, [new.verifier])[1] == [new.verifier]
        assert note.open_note(second, [old.verifier])[1] == [old.verifier]
        assert await log.latest_checkpoint(conn) == second
