"""The ballot group commit against a durable PostgreSQL of its own (`comuna-dev bench ballot-commit`).

Not a test: it reports figures. No `make run` needed: a throw-away PostgreSQL with fsync ON
(every commit durable, as in production), the consultations schema migrated to head, one
consultation in `voting` with communes, candidates and one electronic table per commune.

1. group commit, closed loop: `concurrency` concurrent voters each hand ballots (half online,
   half at a table, 1 in 10 blank) to the real `BallotWriter` of consultations and wait for
   their commit; ballots/s and latency percentiles;
2. group commit, open loop at `rate` ballots/s (arrivals on a fixed schedule, not waiting for
   the previous answer): latency p50/p99 — the issue's "p99 at 1,000 ballots/s";
3. raw batched COPY of the same number of ballot rows into a bare copy of `ballots`, one
   transaction per `batch` rows, in the same run; the ratio of (1) to it.

This is the database side of the ballot path (participations with conflicts, shuffled
ballots, one transaction per batch); the REST part (HTTP, token, officer scope, roll lookup)
is `comuna-dev bench ballots` against `make run`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from comuna_devstack.locations import cache_root, owned_temp_dir
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres

COMMUNES = 50


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _cuts(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2)}


async def _seed(dsn: str) -> tuple[uuid.UUID, list[tuple[uuid.UUID, list[uuid.UUID], uuid.UUID]]]:
    """One consultation in voting; per commune: (commune id, candidate ids, electronic table id)."""
    conn = await asyncpg.connect(dsn)
    try:
        consultation = uuid.uuid4()
        await conn.execute(
            "INSERT INTO consultations (id, code, title, status, assemblies_open_at, candidates_close_at,"
            " roll_cutoff_at, voting_opens_at, voting_closes_at, certification_opens_at, commune_count)"
            " VALUES ($1, '2099-Q1', 'Bench', 'open', now() - interval '2 days', now() - interval '1 day',"
            " now() - interval '1 day', now() - interval '1 hour', now() + interval '1 day',"
            " now() + interval '1 day', $2)",
            consultation,
            COMMUNES,
        )
        centre = uuid.uuid4()
        await conn.execute(
            "INSERT INTO voting_centres (id, consultation_id, code, name) VALUES ($1, $2, 'C', 'Escuela')",
            centre,
            consultation,
        )
        communes = []
        for c in range(COMMUNES):
            commune = uuid.uuid4()
            await conn.execute(
                "INSERT INTO consultation_communes VALUES ($1, $2, $3, $4)",
                consultation,
                commune,
                f"VE.90.01.B{c:03d}",
                f"Comuna {c}",
            )
            candidates = [uuid.uuid4() for _ in range(3)]
            for priority, candidate in enumerate(candidates, start=1):
                await conn.execute(
                    "INSERT INTO candidates (id, consultation_id, commune_id, title, description, assembly_priority)"
                    " VALUES ($1, $2, $3, 'P', 'bench', $4)",
                    candidate,
                    consultation,
                    commune,
                    priority,
                )
            await conn.execute("INSERT INTO voting_centre_communes VALUES ($1, $2, $3)", centre, commune, consultation)
            table = uuid.uuid4()
            await conn.execute(
                "INSERT INTO voting_tables (id, consultation_id, centre_id, commune_id, code, kind)"
                " VALUES ($1, $2, $3, $4, $5, 'electronic')",
                table,
                consultation,
                centre,
                commune,
                f"T-B{c:03d}",
            )
            communes.append((commune, candidates, table))
        return consultation, communes
    finally:
        await conn.close()


def _ballots(
    consultation: uuid.UUID, communes: list[tuple[uuid.UUID, list[uuid.UUID], uuid.UUID]], n: int
) -> list[Any]:
    from comuna_consultations.storage.participations import ParticipationRow
    from comuna_consultations.voting.group_commit import BallotToWrite

    out = []
    for i in range(n):
        commune, candidates, table = communes[i % len(communes)]
        online = i % 2 == 0
        row = ParticipationRow(
            consultation, secrets.token_hex(32), commune, "online" if online else "table", None if online else table
        )
        out.append(BallotToWrite(row, None if i % 10 == 9 else candidates[i % 3], accepted_at=datetime.now(UTC)))
    return out


async def _closed_loop(url: str, ballots: list[Any], concurrency: int, policy: Any) -> dict[str, Any]:
    from comuna_consultations.voting.group_commit import BallotWriter, Outcome
    from comuna_platform.db import Database

    db = Database(url, pool_size=policy.writers + 2)
    writer = BallotWriter(db, policy)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    queue = iter(ballots)

    async def voter() -> None:
        for ballot in queue:
            started = time.perf_counter()
            written = await writer.write(ballot)
            latencies.append(time.perf_counter() - started)
            outcomes[written.outcome] = outcomes.get(written.outcome, 0) + 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(voter() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await db.dispose()
    assert outcomes == {Outcome.CAST: len(ballots)}, outcomes
    return {
        "ballots": len(ballots),
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "per_second": round(len(ballots) / elapsed),
        **_cuts(latencies),
    }


async def _open_loop(url: str, ballots: list[Any], rate: float, policy: Any) -> dict[str, Any]:
    from comuna_consultations.voting.group_commit import BallotWriter
    from comuna_platform.db import Database

    db = Database(url, pool_size=policy.writers + 2)
    writer = BallotWriter(db, policy)
    latencies: list[float] = []

    async def one(ballot: Any) -> None:
        started = time.perf_counter()
        await writer.write(ballot)
        latencies.append(time.perf_counter() - started)

    tasks = []
    try:
        started = time.perf_counter()
        for i, ballot in enumerate(ballots):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(ballot)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    finally:
        await db.dispose()
    return {
        "ballots": len(ballots),
        "offered_per_second": rate,
        "achieved_per_second": round(len(ballots) / elapsed),
        **_cuts(latencies),
    }


async def _raw_copy(dsn: str, ballots: list[Any], batch: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE raw_ballots (LIKE ballots INCLUDING DEFAULTS INCLUDING INDEXES)")
        records = [
            (
                uuid.uuid4(),
                b.participation.consultation_id,
                b.participation.commune_id,
                b.candidate_id,
                b.participation.channel,
                b.participation.table_id,
            )
            for b in ballots
        ]
        started = time.perf_counter()
        for start in range(0, len(records), batch):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "raw_ballots",
                    records=records[start : start + batch],
                    columns=["id", "consultation_id", "commune_id", "candidate_id", "channel", "table_id"],
                )
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    return {
        "rows": len(records),
        "batch": batch,
        "seconds": round(elapsed, 2),
        "per_second": round(len(records) / elapsed),
    }


def run(ballots: int = 100_000, *, concurrency: int = 512, rate: float = 1000.0, keep: bool = False) -> dict[str, Any]:
    import comuna_consultations
    from comuna_consultations.voting.group_commit import BatchPolicy
    from comuna_platform.migrations import upgrade

    policy = BatchPolicy()
    scratch = owned_temp_dir(cache_root() / "scratch", "bench-ballot-commit")
    report: dict[str, Any] = {
        "durable": "fsync on, synchronous_commit on: each batch committed before its answers",
        "policy": {
            "max_size": policy.max_size,
            "min_size": policy.min_size,
            "linger_s": policy.linger,
            "max_hold_s": policy.max_hold,
            "writers": policy.writers,
        },
    }
    try:
        with EmbeddedPostgres(scratch / "pg", free_port(), fast=False) as pg:
            pg.create_database("bench_consultations")
            url = pg.dsn("bench_consultations")
            upgrade(Path(comuna_consultations.__file__).parent / "migrations", url)
            consultation, communes = asyncio.run(_seed(_plain(url)))
            closed = _ballots(consultation, communes, ballots)
            report["group_commit"] = asyncio.run(_closed_loop(url, closed, concurrency, policy))
            open_n = min(ballots, int(rate * 10))
            report["group_commit_open_loop"] = asyncio.run(
                _open_loop(url, _ballots(consultation, communes, open_n), rate, policy)
            )
            report["raw_copy"] = asyncio.run(_raw_copy(_plain(url), closed, policy.max_size))
            report["group_commit_to_raw_copy"] = round(
                report["group_commit"]["per_second"] / report["raw_copy"]["per_second"], 3
            )
            report["cpu_count"] = os.cpu_count()
            report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return report
