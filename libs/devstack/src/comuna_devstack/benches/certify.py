"""Certify a national consultation (`comuna-dev bench certify`): 6,500,000 ballots across 5,336
communes, next to a raw `GROUP BY` over the same rows, and the memory of a serving consultations
process with the roll loaded.

Not a test: it reports figures (JSON). On a throw-away PostgreSQL of its own (no `make run`):

1. seed by COPY into a migrated consultations database: one consultation whose voting closed,
   5,336 communes, candidates, a roll of `--roll` entries, `--ballots` participations and
   ballots (online, electronic-table and offline channels, some blank), a few conflicts; then
   VACUUM ANALYZE (what autovacuum does after voting day);
2. raw: `SELECT commune_id, candidate_id, count(*) ... GROUP BY` over the same ballots;
3. certify: the real use case (`results.usecases.certify_all`, a national operator) in one
   unit of work, commit included: every count (ballots per channel and table, participations,
   roll, conflicts), the ranking, the certified rows and the 5,336 staged events;
4. memory: `comuna-consultations serve` as its own process on this database (and an embedded
   NATS), its RSS from /proc once ready, and again after it served one commune's results.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from comuna_devstack.locations import cache_root, owned_temp_dir
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres

BATCH = 250_000
CHANNELS = ("online", "table", "offline")


def _rate(n: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 2), "per_second": round(n / seconds) if seconds > 0 else 0}


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _spread(total: int, parts: int) -> list[int]:
    """`total` split over `parts` as evenly as possible."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Country:
    """Communes, their candidates and electronic/offline tables (ids only)."""

    def __init__(self, communes: int, candidates: int, tables: int) -> None:
        self.communes = [uuid.uuid4() for _ in range(communes)]
        self.candidates = {c: [uuid.uuid4() for _ in range(candidates)] for c in self.communes}
        self.centres = {c: uuid.uuid4() for c in self.communes}
        # Per commune: `tables` electronic tables and one offline table.
        self.tables = {c: [uuid.uuid4() for _ in range(tables + 1)] for c in self.communes}


def _ballots(country: Country, consultation_id: uuid.UUID, total: int) -> Iterator[list[tuple[Any, ...]]]:
    """Ballot rows in batches: per commune, candidate k gets a share growing with k, 2% blank;
    channels in turn (online without a table; table and offline at one of the commune's tables)."""
    batch: list[tuple[Any, ...]] = []
    for commune, n in zip(country.communes, _spread(total, len(country.communes)), strict=True):
        choices = country.candidates[commune]
        tables = country.tables[commune]
        weights = [k + 1 for k in range(len(choices))]
        for i in range(n):
            channel = CHANNELS[i % 3]
            table = (
                None if channel == "online" else (tables[-1] if channel == "offline" else tables[i % (len(tables) - 1)])
            )
            if i % 50 == 0:
                candidate = None
            else:
                pick = i % sum(weights)
                k = 0
                while pick >= weights[k]:
                    pick -= weights[k]
                    k += 1
                candidate = choices[k]
            batch.append((uuid.uuid4(), consultation_id, commune, candidate, channel, table))
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


async def _seed(dsn: str, country: Country, consultation_id: uuid.UUID, ballots: int, roll: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        now = datetime.now(UTC)
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO consultations (id, code, title, status, assemblies_open_at, voting_opens_at, voting_closes_at,"
            " commune_count, voting_started_at, closed_at) VALUES ($1, '2099-Q2', 'Bench', 'closed', $2, $3, $4, $5,"
            " $3, $4)",
            consultation_id,
            now - timedelta(days=60),
            now - timedelta(days=2),
            now - timedelta(days=1),
            len(country.communes),
        )
        await conn.copy_records_to_table(
            "consultation_communes",
            records=[
                (consultation_id, c, f"VE.80.{i // 100:02d}.C{i:04d}", f"Comuna {i}")
                for i, c in enumerate(country.communes)
            ],
            columns=["consultation_id", "commune_id", "code", "name"],
        )
        await conn.copy_records_to_table(
            "candidates",
            records=[
                (k, consultation_id, c, f"Proyecto {p} de la comuna", "", p, now - timedelta(days=30, minutes=p))
                for c, ks in country.candidates.items()
                for p, k in enumerate(ks, start=1)
            ],
            columns=["id", "consultation_id", "commune_id", "title", "description", "assembly_priority", "created_at"],
        )
        await conn.copy_records_to_table(
            "voting_centres",
            records=[
                (centre, consultation_id, f"E{i:05d}", f"Escuela {i}", "")
                for i, centre in enumerate(country.centres.values())
            ],
            columns=["id", "consultation_id", "code", "name", "address"],
        )
        await conn.copy_records_to_table(
            "voting_centre_communes",
            records=[(centre, c, consultation_id) for c, centre in country.centres.items()],
            columns=["centre_id", "commune_id", "consultation_id"],
        )
        await conn.copy_records_to_table(
            "voting_tables",
            records=[
                (
                    t,
                    consultation_id,
                    country.centres[c],
                    c,
                    f"M{i:05d}-{j}",
                    "offline" if j == len(ts) - 1 else "electronic",
                )
                for i, (c, ts) in enumerate(country.tables.items())
                for j, t in enumerate(ts)
            ],
            columns=["id", "consultation_id", "centre_id", "commune_id", "code", "kind"],
        )
        figures: dict[str, Any] = {}
        t = time.perf_counter()
        seq = 0
        for commune, n in zip(country.communes, _spread(roll, len(country.communes)), strict=True):
            council = commune
            records = [
                (consultation_id, (seq + i).to_bytes(32, "big"), seq + i, None, commune, council) for i in range(n)
            ]
            seq += n
            await conn.copy_records_to_table(
                "roll_entries",
                records=records,
                columns=["consultation_id", "voter_key", "seq", "login_key", "commune_id", "council_id"],
            )
        figures["roll"] = _rate(roll, time.perf_counter() - t)
        t = time.perf_counter()
        participations: list[tuple[Any, ...]] = []
        voter = 0
        for commune, n in zip(country.communes, _spread(ballots, len(country.communes)), strict=True):
            tables = country.tables[commune]
            for i in range(n):
                channel = CHANNELS[i % 3]
                table = (
                    None
                    if channel == "online"
                    else (tables[-1] if channel == "offline" else tables[i % (len(tables) - 1)])
                )
                participations.append((consultation_id, f"{voter:064x}", commune, channel, table))
                voter += 1
            if len(participations) >= BATCH:
                await conn.copy_records_to_table(
                    "participations",
                    records=participations,
                    columns=["consultation_id", "voter_ref", "commune_id", "channel", "table_id"],
                )
                participations = []
        if participations:
            await conn.copy_records_to_table(
                "participations",
                records=participations,
                columns=["consultation_id", "voter_ref", "commune_id", "channel", "table_id"],
            )
        figures["participations"] = _rate(ballots, time.perf_counter() - t)
        t = time.perf_counter()
        for batch in _ballots(country, consultation_id, ballots):
            await conn.copy_records_to_table(
                "ballots",
                records=batch,
                columns=["id", "consultation_id", "commune_id", "candidate_id", "channel", "table_id"],
            )
        figures["ballots"] = _rate(ballots, time.perf_counter() - t)
        # One conflict in every 100th commune (never enough to change a winner: the gate passes).
        await conn.copy_records_to_table(
            "participation_conflicts",
            records=[
                (uuid.uuid4(), consultation_id, c, f"{10**12 + i:064x}", "online", None, False)
                for i, c in enumerate(country.communes[::100])
            ],
            columns=["id", "consultation_id", "commune_id", "voter_ref", "channel", "table_id", "ballot_counted"],
        )
        t = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        figures["vacuum_analyze_seconds"] = round(time.perf_counter() - t, 2)
        figures["total_seconds"] = round(time.perf_counter() - started, 2)
        return figures
    finally:
        await conn.close()


async def _raw_group_by(dsn: str, consultation_id: uuid.UUID) -> tuple[int, float]:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        rows = await conn.fetch(
            "SELECT commune_id, candidate_id, count(*) FROM ballots WHERE consultation_id = $1 GROUP BY 1, 2",
            consultation_id,
        )
        return sum(int(r[2]) for r in rows), time.perf_counter() - started
    finally:
        await conn.close()


async def _certify(database_url: str, consultation_id: uuid.UUID) -> dict[str, Any]:
    # The service's assembly registers the events' translations (as `serve` does).
    from comuna_consultations import service  # noqa: F401
    from comuna_consultations.results import usecases
    from comuna_platform.auth.access import Assignment, Caller
    from comuna_platform.auth.principal import Principal
    from comuna_platform.auth.roles import Role
    from comuna_platform.db import Database

    class NoWatcher:
        def invalidate(self, consultation_id: uuid.UUID) -> None:
            return None

    operator = Caller(
        Principal("bench-operator", "bench", frozenset(), None),
        (Assignment(Role.OPERATOR, "VE", national=True),),
    )
    db = Database(database_url, pool_size=2)
    try:
        started = time.perf_counter()
        async with db.unit_of_work() as uow:
            run = await usecases.certify_all(uow, operator, consultation_id, now=datetime.now(UTC), watcher=NoWatcher())
            staged = len(uow.staged)
        seconds = time.perf_counter() - started
        return {
            "seconds": round(seconds, 2),
            "communes_certified": len(run.certified),
            "communes_blocked": len(run.blocked),
            "ballots_certified": sum(c.ballots for c in run.certified),
            "events_staged": staged,
            "status": run.consultation.status,
        }
    finally:
        await db.dispose()


def _rss_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (a local URL we built)
            response.read()
            return int(response.status)
    except OSError:
        return 0


def _serve_and_measure(
    database_url: str, nats_url: str, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> dict[str, Any]:
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "COMUNA_CONSULTATIONS_DATABASE_URL": database_url,
        "COMUNA_CONSULTATIONS_NATS_URL": nats_url,
        "COMUNA_CONSULTATIONS_HTTP_PORT": str(http),
        "COMUNA_CONSULTATIONS_GRPC_PORT": str(grpc_port),
        "COMUNA_CONSULTATIONS_METRICS_PORT": str(metrics),
        # Never reached: nothing in this measurement needs a token or identity.
        "COMUNA_CONSULTATIONS_OIDC_ISSUER": f"http://127.0.0.1:{free_port()}/realms/bench",
        "COMUNA_CONSULTATIONS_IDENTITY_GRPC_TARGET": f"127.0.0.1:{free_port()}",
        "COMUNA_CONSULTATIONS_LOG_LEVEL": "WARNING",
    }
    program = Path(sys.executable).parent / "comuna-consultations"
    process = subprocess.Popen([str(program), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 120
        while _get(f"{base}/healthz") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                error = process.stderr.read().decode()[-800:] if process.stderr and process.poll() is not None else ""
                raise RuntimeError(f"comuna-consultations serve did not come up: {error}")
            time.sleep(0.2)
        ready = _rss_of(process.pid)
        status = _get(f"{base}/v1/consultations/{consultation_id}/communes/{commune_id}/results")
        after = _rss_of(process.pid)
        return {"rss_mb_ready": ready, "rss_mb_after_results": after, "results_status": status}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def run(
    ballots: int = 6_500_000,
    *,
    communes: int = 5_336,
    candidates: int = 5,
    tables: int = 3,
    roll: int = 8_000_000,
    keep: bool = False,
) -> dict[str, Any]:
    import comuna_consultations
    from comuna_platform.migrations import upgrade

    scratch = owned_temp_dir(cache_root() / "scratch", "bench-certify")
    report: dict[str, Any] = {
        "ballots": ballots,
        "communes": communes,
        "candidates_per_commune": candidates,
        "roll_entries": roll,
        "target_seconds": 10,
    }
    try:
        with (
            EmbeddedPostgres(scratch / "pg", free_port(), fast=True) as pg,
            EmbeddedNats(scratch / "nats", free_port()) as nats_server,
        ):
            pg.create_database("bench_certify")
            url = pg.dsn("bench_certify")
            upgrade(Path(comuna_consultations.__file__).parent / "migrations", url)
            country = Country(communes, candidates, tables)
            consultation_id = uuid.uuid4()
            report["seed"] = asyncio.run(_seed(_plain(url), country, consultation_id, ballots, roll))
            counted, raw_seconds = asyncio.run(_raw_group_by(_plain(url), consultation_id))
            report["raw_group_by"] = {"rows_counted": counted, **_rate(counted, raw_seconds)}
            certified = asyncio.run(_certify(url, consultation_id))
            report["certify"] = {**certified, "per_second": round(ballots / certified["seconds"])}
            report["certify_over_raw_group_by"] = round(certified["seconds"] / raw_seconds, 2) if raw_seconds else None
            report["meets_target"] = certified["seconds"] < report["target_seconds"] and (
                certified["ballots_certified"] == ballots
            )
            report["consultations_process"] = _serve_and_measure(
                url, nats_server.url, consultation_id, country.communes[0]
            )
            report["cpu_count"] = os.cpu_count()
            report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return report


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, communes=200, roll=150_000), indent=2))
