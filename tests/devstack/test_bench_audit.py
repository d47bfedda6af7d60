"""The audit benchmark runs end to end (on a small count: figures are for `comuna-dev bench audit`)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from comuna_devstack.benches import audit as bench
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
