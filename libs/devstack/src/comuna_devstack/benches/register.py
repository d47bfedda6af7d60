"""Benchmark of the territory register at national scale (issue 7: import ~53,000 units < 10 s).

`run(admin_url)` is handed a database URL (empty, or with identity migrated: the migration is
applied if needed) and starts nothing itself. It measures, in one run: generating the synthetic
register, importing it (a new register), importing the same file again (0 changes), exporting it,
and, as the floor to compare with, a raw `COPY` of the same rows into a plain table.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from comuna_devstack.register_gen import COLUMNS, Row, generate, write


def _plain_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _raw_copy(url: str, rows: Sequence[Row]) -> float:
    conn = await asyncpg.connect(_plain_dsn(url))
    try:
        await conn.execute(
            "CREATE TEMPORARY TABLE bench_register_copy (code text, name text, kind text, parent_code text,"
            " valid_from date, status text)"
        )
        records = [(c, n, k, p, date.fromisoformat(v), s) for c, n, k, p, v, s in rows]
        started = time.perf_counter()
        await conn.copy_records_to_table("bench_register_copy", records=records, columns=COLUMNS)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _measure(url: str, data: bytes) -> dict[str, Any]:
    # Imported here: the dev stack runs identity as a process elsewhere; only the benchmark
    # drives its domain in-process (the same code as the CLI and REST imports).
    import comuna_identity.messages  # noqa: F401  (the translation of the event an import stages)
    from comuna_identity.domain import register_import
    from comuna_platform.bulk import BulkFormat, read_rows
    from comuna_platform.db import Database

    db = Database(url, pool_size=2)
    figures: dict[str, Any] = {}
    try:
        for label in ("import", "reimport"):
            started = time.perf_counter()
            async with db.unit_of_work() as uow:
                rows = read_rows(
                    _chunks(data), BulkFormat.CSV, columns=register_import.COLUMNS, required=register_import.REQUIRED
                )
                result = await register_import.import_rows(uow, rows, actor="cli:bench")
            figures[f"{label}_seconds"] = round(time.perf_counter() - started, 3)
            figures[f"{label}_counts"] = {
                "created": result.created,
                "changed": result.changed,
                "unchanged": result.unchanged,
            }
        started = time.perf_counter()
        exported = 0
        async with db.transaction() as session:
            async for _ in register_import.export(session, datetime.now(UTC).date()):
                exported += 1
        figures["export_seconds"] = round(time.perf_counter() - started, 3)
        figures["exported_units"] = exported
    finally:
        await db.dispose()
    return figures


def run(admin_url: str, *, seed: int = 1) -> dict[str, Any]:
    """Figures of one run against the database at `admin_url` (postgresql+asyncpg://...)."""
    import comuna_identity
    from comuna_platform.migrations import upgrade

    upgrade(Path(comuna_identity.__file__).parent / "migrations", admin_url)
    started = time.perf_counter()
    rows = list(generate(seed))
    generate_seconds = time.perf_counter() - started
    # The CSV file, in memory (the import reads it as the CLI reads a file, in 64 KiB chunks).
    out = io.StringIO()
    write(iter(rows), out, "csv")
    data = out.getvalue().encode()
    figures = asyncio.run(_measure(admin_url, data))
    copy_seconds = asyncio.run(_raw_copy(admin_url, rows))
    return {
        "units": len(rows),
        "file_bytes": len(data),
        "generate_seconds": round(generate_seconds, 3),
        **figures,
        "raw_copy_seconds": round(copy_seconds, 3),
        "import_units_per_second": round(len(rows) / figures["import_seconds"]),
        "raw_copy_units_per_second": round(len(rows) / copy_seconds) if copy_seconds else None,
        "target_import_seconds": 10,
        "meets_target": figures["import_seconds"] < 10,
    }
