"""The audit benchmark runs end to end (on a small count: figures are for `comuna-dev bench audit`)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncpg
import pytest

from comuna_devstack.benches import audit as bench
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres

pytestmark = pytest.mark.asyncio


async def test_the_audit_benchmark_appends_verifies_and_cleans_up(embedded_postgres: EmbeddedPostgres) -> None:
    report = await asyncio.to_thread(bench.run, embedded_postgres.dsn("postgres"), entries=3_000)
    assert report["entries"] == 3_000
    assert report["intact"] is True
    for key in ("append_seconds", "verify_seconds", "raw_copy_seconds", "append_per_second", "peak_rss_mib"):
        assert report[key] > 0, key
    server = await asyncpg.connect(embedded_postgres.dsn("postgres").replace("+asyncpg", ""))
    try:
        assert await server.fetchval("SELECT count(*) FROM pg_database WHERE datname LIKE 'bench_audit_%'") == 0
    finally:
        await server.close()


async def dev(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        Path(sys.executable).parent / "comuna-dev",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_comuna_dev_bench_audit(embedded_postgres: EmbeddedPostgres) -> None:
    status, out, _ = await dev("bench", "audit", "--entries", "500", "--admin-url", embedded_postgres.dsn("postgres"))
    assert status == 0
    report = json.loads(out)
    assert (report["entries"], report["intact"]) == (500, True)
    status, _, err = await dev(
        "bench", "audit", "--admin-url", f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x"
    )
    assert status == 2
    assert "PostgreSQL unavailable" in err
