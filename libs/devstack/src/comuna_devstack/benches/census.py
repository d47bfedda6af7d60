"""Import N residents through `comuna-identity import residents` and report where the time goes.

Not a test: it reports figures. It creates a fresh identity database on the server at
`admin_url` (a superuser URL), migrates it, seeds a small synthetic register (one state, 10
municipalities, 100 communes, 1,000 councils), writes a CSV of N residents, imports it through
the command line (the path an operator uses), then COPYs the same file into a plain table in
the same run for comparison. The importer reports its own split: parsing + normalising + HMAC
and the roll base point multiplication in CPU seconds summed over its worker processes, and
COPY, validation, merge and audit in wall seconds.
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
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from comuna_platform.documents import normalise_document
from comuna_platform.voter_keys import document_point, multiply, scalar_from

MUNICIPALITIES = 10
COMMUNES_PER_MUNICIPALITY = 10
COUNCILS_PER_COMMUNE = 10
STATE = "VE.77"


def _plain(url: str) -> str:
    return url.replace("+asyncpg", "")


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def _script(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    return found


def councils() -> list[str]:
    return [
        f"{STATE}.{m:02d}.C{c:02d}.CC{k:02d}"
        for m in range(MUNICIPALITIES)
        for c in range(COMMUNES_PER_MUNICIPALITY)
        for k in range(COUNCILS_PER_COMMUNE)
    ]


async def _seed_register(url: str) -> None:
    """The register by SQL into identity's territories and their versions (ids chosen here, parents by id)."""
    rows: list[tuple[uuid.UUID, str, str, str, uuid.UUID | None]] = []
    root = uuid.uuid4()
    state = uuid.uuid4()
    rows += [(root, "VE", "Venezuela", "country", None), (state, STATE, "Bench", "state", root)]
    for m in range(MUNICIPALITIES):
        municipality = uuid.uuid4()
        rows.append((municipality, f"{STATE}.{m:02d}", f"Municipio {m}", "municipality", state))
        for c in range(COMMUNES_PER_MUNICIPALITY):
            commune = uuid.uuid4()
            rows.append((commune, f"{STATE}.{m:02d}.C{c:02d}", f"Comuna {m}-{c}", "commune", municipality))
            for k in range(COUNCILS_PER_COMMUNE):
                code = f"{STATE}.{m:02d}.C{c:02d}.CC{k:02d}"
                rows.append((uuid.uuid4(), code, f"Consejo {m}-{c}-{k}", "communal_council", commune))
    conn = await asyncpg.connect(_plain(url))
    try:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO territories (id, code) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING",
                [(row[0], row[1]) for row in rows],
            )
            # One version each, in force since long before any residence in the file.
            await conn.executemany(
                "INSERT INTO territory_versions (id, territory_id, valid_from, name, kind, parent_id, status)"
                " SELECT gen_random_uuid(), t.id, DATE '1900-01-01', $2, $3, $4, 'active' FROM territories t"
                " WHERE t.id = $1 ON CONFLICT DO NOTHING",
                [(row[0], row[2], row[3], row[4]) for row in rows],
            )
    finally:
        await conn.close()


def write_residents(path: Path, residents: int) -> int:
    """N residents over the register's councils; numbers written as registers write them."""
    codes = councils()
    with path.open("w") as out:
        out.write("document_type,document_number,birth_date,council_code,valid_from\n")
        for i in range(residents):
            number = 10_000_000 + i * 3
            written = f"{number:,}".replace(",", ".") if i % 3 == 0 else str(number)
            birth = f"{1940 + i % 70}-{1 + i % 12:02d}-{1 + i % 28:02d}"
            out.write(f"{'V' if i % 10 else 'E'},{written},{birth},{codes[i % len(codes)]},2020-01-01\n")
    return path.stat().st_size


async def _raw_copy(url: str, path: Path) -> float:
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(
            "CREATE TABLE raw_residents (document_type text, document_number text, birth_date date,"
            " council_code text, valid_from date)"
        )
        started = time.perf_counter()
        await conn.copy_to_table("raw_residents", source=str(path), format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(_plain(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(_plain(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def point_microseconds(samples: int = 2000) -> float:
    """One roll base point (hash to the group + scalar multiplication) on one core, in µs."""
    k = scalar_from(secrets.token_bytes(32), "roll-base")
    documents = [normalise_document(str(20_000_000 + i)) for i in range(samples)]
    started = time.process_time()
    for document in documents:
        multiply(k, document_point(document))
    return (time.process_time() - started) / samples * 1e6


def run(admin_url: str, residents: int = 1_000_000) -> dict[str, Any]:
    name = f"bench_census_{uuid.uuid4().hex[:8]}"
    url = _with_database(admin_url, name)
    asyncio.run(_create_database(admin_url, name))
    env = {
        **os.environ,
        "COMUNA_IDENTITY_DATABASE_URL": url,
        "COMUNA_IDENTITY_CENSUS_HASH_KEY": secrets.token_urlsafe(32),
        "COMUNA_IDENTITY_ROLL_SECRET": secrets.token_urlsafe(48),
        "COMUNA_IDENTITY_LOG_LEVEL": "WARNING",
    }
    try:
        subprocess.run([_script("comuna-identity"), "migrate"], env=env, check=True, capture_output=True)
        asyncio.run(_seed_register(url))
        with tempfile.TemporaryDirectory(prefix="comuna-bench-census-") as scratch:
            path = Path(scratch) / "residents.csv"
            generated_at = time.perf_counter()
            size = write_residents(path, residents)
            generate_seconds = time.perf_counter() - generated_at
            started = time.perf_counter()
            done = subprocess.run(
                [_script("comuna-identity"), "import", "residents", str(path), "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"import failed ({done.returncode}): {done.stderr.strip()[-500:]}")
            report = json.loads(done.stdout)
            # Largest resident set of the importer and its worker processes (Linux: KiB).
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            again_started = time.perf_counter()
            again = subprocess.run(
                [_script("comuna-identity"), "import", "residents", str(path), "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            again_seconds = time.perf_counter() - again_started
            raw_seconds = asyncio.run(_raw_copy(url, path))
        split = {phase: round(value, 2) for phase, value in report.pop("seconds").items()}
        return {
            "residents": residents,
            "file_mb": round(size / 1e6, 1),
            "generate_seconds": round(generate_seconds, 1),
            "import_seconds": round(seconds, 1),
            "rows_per_second": round(residents / seconds),
            "peak_rss_mb": round(peak_mb, 1),
            "importer_peak_rss_mb": report.pop("peak_rss_mb", None),
            "split_seconds": split,
            "split_note": "parse (normalise + HMAC) and points are CPU seconds summed over the worker processes; "
            "lookup (which people the census holds already), copy, validate, merge, audit, total are wall "
            "seconds inside the importer; the re-import computes no points",
            "point_us_one_core": round(point_microseconds(), 1),
            "cores": os.cpu_count(),
            "report": report,
            "reimport_seconds": round(again_seconds, 1),
            "reimport_changes": json.loads(again.stdout)["changes"],
            "reimport_split_seconds": {k: round(v, 2) for k, v in json.loads(again.stdout)["seconds"].items()},
            "raw_copy_seconds": round(raw_seconds, 2),
            "raw_copy_rows_per_second": round(residents / raw_seconds),
        }
    finally:
        asyncio.run(_drop_database(admin_url, name))
