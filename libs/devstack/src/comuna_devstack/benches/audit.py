"""Benchmark of identity's audit log: append 1,000,000 entries in one call (one transaction, as
a bulk census import does), verify the whole chain, and COPY the same rows raw for comparison.

`run(admin_url)` works in a throw-away database of the server `admin_url` (a superuser) points
at, and drops it at the end. Figures: seconds and entries per second of each step, and the
process's peak resident memory.
"""

from __future__ import annotations

import asyncio
import io
import resource
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

ENTRIES = 1_000_000


def run(admin_url: str, *, entries: int = ENTRIES) -> dict[str, Any]:
    """Append `entries` audit entries in one call, verify them, report the figures."""
    return asyncio.run(_run(admin_url, entries))


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _run(admin_url: str, count: int) -> dict[str, Any]:
    import comuna_identity
    from comuna_identity.domain import audit
    from comuna_identity.storage import audit_log
    from comuna_platform.db import Database
    from comuna_platform.migrations import upgrade

    name = f"bench_audit_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(_plain(make_url(admin_url).set(database="postgres").render_as_string(False)))
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
    finally:
        await server.close()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(Path(comuna_identity.__file__).parent / "migrations", url)
        entries = _entries(audit.AuditEntry, count)
        peak_with_entries = _peak_mib()
        db = Database(url, pool_size=1)
        try:
            started = time.perf_counter()
            async with db.transaction() as session:
                head = await audit.append_entries(session, entries)
            append_seconds = time.perf_counter() - started
            peak_after_append = _peak_mib()
        finally:
            await db.dispose()
        connection = await asyncpg.connect(_plain(url))
        try:
            result = await audit.verify(audit_log.walk(connection))
            raw_seconds = await _raw_copy(connection)
        finally:
            await connection.close()
    finally:
        server = await asyncpg.connect(_plain(make_url(admin_url).set(database="postgres").render_as_string(False)))
        try:
            await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await server.close()
    return {
        "entries": count,
        "append_seconds": round(append_seconds, 2),
        "append_per_second": round(count / append_seconds),
        "verify_seconds": round(result.seconds, 2),
        "verify_per_second": round(count / result.seconds) if result.seconds else None,
        "intact": result.intact and result.entries == count and result.head.entry_hash == head.entry_hash,
        "raw_copy_seconds": round(raw_seconds, 2),
        "raw_copy_per_second": round(count / raw_seconds),
        # The entries themselves (the caller's input) are most of it; what the append adds on top
        # is the COPY's buffers: the rows are hashed as they stream, never all held at once.
        "peak_rss_mib_with_entries": peak_with_entries,
        "peak_rss_mib_after_append": peak_after_append,
        "peak_rss_mib": _peak_mib(),
    }


def _peak_mib() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _entries(entry_type: Any, count: int) -> list[Any]:
    """What a census import appends: one `resident.registered` per record, with its state."""
    council = str(uuid.uuid4())
    born = date(1960, 1, 1)
    return [
        entry_type(
            actor="cli:bench",
            action="resident.registered",
            object_kind="resident",
            object_id=str(uuid.UUID(int=i + 1)),
            before=None,
            after={
                "council_id": council,
                "birth_date": born + timedelta(days=i % 20_000),
                "status": "active",
                "document_key_id": 1,
            },
        )
        for i in range(count)
    ]


async def _raw_copy(connection: asyncpg.Connection) -> float:
    """The same rows COPYed (binary, as PostgreSQL exported them) into a copy of the table with
    its keys and checks but no trigger: what PostgreSQL alone costs for them."""
    await connection.execute("CREATE TABLE audit_raw (LIKE audit_log INCLUDING ALL)")
    exported = io.BytesIO()
    await connection.copy_from_table("audit_log", output=exported, format="binary")
    exported.seek(0)
    started = time.perf_counter()
    async with connection.transaction():
        await connection.copy_to_table("audit_raw", source=exported, format="binary")
    return time.perf_counter() - started
