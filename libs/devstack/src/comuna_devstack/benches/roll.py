"""Freeze a voter roll of N eligible voters and stream it to consultations (`comuna-dev bench roll`).

Not a test: it reports figures. On a throw-away PostgreSQL of its own (no `make run` needed):

1. seed: a register (communes with councils) and N eligible residents written by COPY, with
   synthetic roll bases `P_i = P_0 + i·G` (cheap distinct points: one point addition each,
   not a hash to the curve per document);
2. identity, as its own process (`benches/roll_identity.py`): prepare the entry keys ahead of
   the cut-off (`s_c·B`, the expensive part), then freeze at the cut-off; then serve the roll;
3. consultations, in this process: the real `RollLoader` pulls StreamRoll over gRPC into
   `roll_entries` by binary COPY and verifies count and digest;
4. a raw COPY of the same N entry rows into a bare copy of `roll_entries`, in the same run.

Each phase is reported with its seconds and rate; RSS is this (consultations) process's once
the roll is loaded. The figure the issue asks for (< 2 min) is freeze + stream + verify: the
key preparation runs before the cut-off, from the moment the consultation asks for its roll.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
from nacl import bindings

from comuna_devstack.locations import cache_root, owned_temp_dir
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres

SEED_BATCH = 50_000
ALWAYS = date(1990, 1, 1)
ADULT = date(1980, 6, 15)


def _rate(n: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 2), "per_second": round(n / seconds) if seconds > 0 else 0}


def _rss_mb() -> dict[str, float]:
    current = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) / 1024
    return {
        "rss_mb": round(current, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _points(first: int, count: int) -> list[bytes]:
    """P_0 + i·G for i in [first, first + count): one scalar multiplication, then additions."""
    generator = bindings.crypto_scalarmult_ed25519_base_noclamp((1).to_bytes(32, "little"))
    p0 = bytes(bindings.crypto_core_ed25519_from_uniform(b"comuna/bench/roll/P0".ljust(32, b"\0")))
    point = bytes(
        bindings.crypto_core_ed25519_add(
            p0, bindings.crypto_scalarmult_ed25519_base_noclamp(first.to_bytes(32, "little"))
        )
        if first
        else p0
    )
    out = []
    for _ in range(count):
        out.append(point)
        point = bytes(bindings.crypto_core_ed25519_add(point, generator))
    return out


def _register(
    communes: int, councils: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[uuid.UUID], list[uuid.UUID]]:
    """territories and territory_versions rows: a country, a state, a municipality, communes, councils."""
    units: list[tuple[Any, ...]] = []
    versions: list[tuple[Any, ...]] = []

    def add(code: str, name: str, kind: str, parent: uuid.UUID | None) -> uuid.UUID:
        unit = uuid.uuid4()
        units.append((unit, code))
        versions.append((uuid.uuid4(), unit, ALWAYS, None, name, kind, parent, "active"))
        return unit

    country = add("VE", "Venezuela", "country", None)
    state = add("VE.80", "Bench", "state", country)
    municipality = add("VE.80.01", "Bench", "municipality", state)
    commune_ids, council_ids = [], []
    for c in range(communes):
        commune = add(f"VE.80.01.R{c:04d}", f"Comuna {c}", "commune", municipality)
        commune_ids.append(commune)
        for k in range(councils):
            council_ids.append(add(f"VE.80.01.R{c:04d}.CC{k:02d}", f"Consejo {c}-{k}", "communal_council", commune))
    return units, versions, commune_ids, council_ids


async def _seed(
    dsn: str, voters: int, communes: int, councils: int, threads: int
) -> tuple[list[uuid.UUID], float, float]:
    conn = await asyncpg.connect(dsn)
    try:
        units, versions, commune_ids, council_ids = _register(communes, councils)
        await conn.copy_records_to_table("territories", records=units, columns=["id", "code"])
        await conn.copy_records_to_table(
            "territory_versions",
            records=versions,
            columns=["id", "territory_id", "valid_from", "valid_until", "name", "kind", "parent_id", "status"],
        )
        points_seconds = 0.0
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(threads) as pool:
            for first in range(0, voters, SEED_BATCH):
                count = min(SEED_BATCH, voters - first)
                t = time.perf_counter()
                step = -(-count // threads)
                parts = await asyncio.gather(
                    *(
                        loop.run_in_executor(pool, _points, first + i, min(step, count - i))
                        for i in range(0, count, step)
                    )
                )
                bases = [p for part in parts for p in part]
                points_seconds += time.perf_counter() - t
                ids = [uuid.uuid4() for _ in range(count)]
                await conn.copy_records_to_table(
                    "residents",
                    records=[
                        (rid, 1, secrets.token_bytes(32), base, ADULT, "active", ALWAYS)
                        for rid, base in zip(ids, bases, strict=True)
                    ],
                    columns=[
                        "id",
                        "document_key_id",
                        "document_hash",
                        "roll_base",
                        "birth_date",
                        "status",
                        "status_since",
                    ],
                )
                await conn.copy_records_to_table(
                    "resident_residences",
                    records=[
                        (uuid.uuid4(), rid, council_ids[(first + i) % len(council_ids)], ALWAYS, None)
                        for i, rid in enumerate(ids)
                    ],
                    columns=["id", "resident_id", "council_id", "valid_from", "valid_until"],
                )
        await conn.execute("ANALYZE")
        return commune_ids, time.perf_counter() - started, points_seconds
    finally:
        await conn.close()


async def _raw_copy(identity_dsn: str, consultations_dsn: str, consultation_id: uuid.UUID) -> tuple[int, float]:
    """The same entry rows as the loader wrote, by one plain COPY into a bare copy of roll_entries."""
    source = await asyncpg.connect(identity_dsn)
    target = await asyncpg.connect(consultations_dsn)
    try:
        rows = await source.fetch(
            "SELECT voter_key, seq, login_key, commune_id, council_id FROM voter_roll_entries"
            " WHERE consultation_id = $1",
            consultation_id,
        )
        records = [(consultation_id, r[0], r[1], r[2], r[3], r[4]) for r in rows]
        del rows
        await target.execute("CREATE TABLE raw_roll_entries (LIKE roll_entries INCLUDING ALL)")
        started = time.perf_counter()
        await target.copy_records_to_table(
            "raw_roll_entries",
            records=records,
            columns=["consultation_id", "voter_key", "seq", "login_key", "commune_id", "council_id"],
        )
        return len(records), time.perf_counter() - started
    finally:
        await source.close()
        await target.close()


def _lines(process: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{"):
            yield json.loads(line)


async def _load(port: int, database_url: str, consultation_id: uuid.UUID, chunk_size: int) -> dict[str, Any]:
    from comuna_consultations.clients.identity import IdentityClient
    from comuna_consultations.roll.loader import RollLoader
    from comuna_consultations.vocabulary import RollLoadStatus
    from comuna_platform.db import Database

    db = Database(database_url, pool_size=4)
    channel = grpc_channel(port)
    client = IdentityClient(channel, timeout=60.0)
    try:
        async with db.transaction() as session:
            from sqlalchemy import text

            await session.execute(
                text(
                    "INSERT INTO consultations (id, code, title, status, assemblies_open_at, candidates_close_at,"
                    " roll_cutoff_at, voting_opens_at, voting_closes_at, certification_opens_at, commune_count)"
                    " VALUES (:id, '2099-Q1', 'Bench', 'open', now(), now() + interval '20 days',"
                    " now() + interval '25 days', now() + interval '30 days', now() + interval '31 days',"
                    " now() + interval '32 days', 1)"
                ),
                {"id": consultation_id},
            )
            await session.execute(
                text(
                    "INSERT INTO roll_loads (consultation_id, cutoff, voting_day, status)"
                    " VALUES (:id, current_date, current_date + 30, 'requested')"
                ),
                {"id": consultation_id},
            )
        loader = RollLoader(db, client, chunk_size=chunk_size)
        started = time.perf_counter()
        # Pull without the verification, then verify: two figures.
        info = await client.get_roll(consultation_id)
        async with db.transaction() as session:
            await session.execute(
                text(
                    "UPDATE roll_loads SET status = 'loading', expected_count = :n, expected_digest = :d,"
                    " voter_key = :v, login_key = :l WHERE consultation_id = :id"
                ),
                {
                    "n": info.entry_count,
                    "d": info.digest,
                    "v": info.voter_key,
                    "l": info.login_key,
                    "id": consultation_id,
                },
            )
        loaded = await loader.pull(consultation_id, 0, info.entry_count)
        stream_seconds = time.perf_counter() - started
        started = time.perf_counter()
        status = await loader.verify(consultation_id)
        verify_seconds = time.perf_counter() - started
        if status != RollLoadStatus.VERIFIED or loaded != info.entry_count:
            raise RuntimeError(f"the roll was not verified: {status}, {loaded} of {info.entry_count}")
        return {"entries": loaded, "stream": stream_seconds, "verify": verify_seconds, **_rss_mb()}
    finally:
        await channel.close()  # the client never closes a channel it was given
        await db.dispose()


def grpc_channel(port: int) -> Any:
    import grpc

    return grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)]
    )


def _plain(url: str) -> str:
    """asyncpg's own DSN for a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


def run(
    voters: int = 5_000_000,
    *,
    communes: int = 100,
    councils_per_commune: int = 10,
    threads: int = 2,
    chunk_size: int = 20_000,
    keep: bool = False,
) -> dict[str, Any]:
    import comuna_consultations
    import comuna_identity
    from comuna_platform.migrations import upgrade

    scratch = owned_temp_dir(cache_root() / "scratch", "bench-roll")
    report: dict[str, Any] = {"voters": voters, "communes": communes, "councils": communes * councils_per_commune}
    try:
        with EmbeddedPostgres(scratch / "pg", free_port(), fast=True) as pg:
            pg.create_database("bench_identity")
            pg.create_database("bench_consultations")
            identity_url, consultations_url = pg.dsn("bench_identity"), pg.dsn("bench_consultations")
            upgrade(Path(comuna_identity.__file__).parent / "migrations", identity_url)
            upgrade(Path(comuna_consultations.__file__).parent / "migrations", consultations_url)
            commune_ids, seed_seconds, points_seconds = asyncio.run(
                _seed(_plain(identity_url), voters, communes, councils_per_commune, threads)
            )
            report["seed"] = {**_rate(voters, seed_seconds), "of_which_points_seconds": round(points_seconds, 2)}
            consultation_id = uuid.uuid4()
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "comuna_devstack.benches.roll_identity",
                    "--database-url",
                    identity_url,
                    "--consultation-id",
                    str(consultation_id),
                    "--cutoff",
                    datetime.now(UTC).date().isoformat(),
                    "--threads",
                    str(threads),
                    *[str(c) for c in commune_ids],
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                # The secret in the environment, not on the command line (`ps` shows that).
                env={**os.environ, "COMUNA_BENCH_ROLL_SECRET": secrets.token_hex(32)},
            )
            try:
                port = 0
                for message in _lines(child):
                    if message["phase"] == "serving":
                        port = message["port"]
                        break
                    report[message["phase"]] = {**_rate(voters, message["seconds"]), "split": message["split"]}
                if not port:
                    raise RuntimeError(f"the identity process ended early (exit {child.wait()})")
                loaded = asyncio.run(_load(port, consultations_url, consultation_id, chunk_size))
            finally:
                if child.stdin is not None:
                    child.stdin.close()
                child.wait(timeout=30)
            report["stream_and_copy"] = _rate(loaded["entries"], loaded["stream"])
            report["verify"] = _rate(loaded["entries"], loaded["verify"])
            report["consultations_process"] = {k: loaded[k] for k in ("rss_mb", "peak_rss_mb")}
            freeze_to_loaded = report["freeze"]["seconds"] + loaded["stream"] + loaded["verify"]
            report["freeze_stream_verify_seconds"] = round(freeze_to_loaded, 2)
            rows, raw_seconds = asyncio.run(_raw_copy(_plain(identity_url), _plain(consultations_url), consultation_id))
            report["raw_copy_same_rows"] = _rate(rows, raw_seconds)
            report["cpu_count"] = os.cpu_count()
            report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return report


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000), indent=2))
