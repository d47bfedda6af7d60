"""Bulk import and export of the register, against real PostgreSQL: upsert by code, the same file
twice changes nothing, a bad file is refused whole with every bad line, export as of a day."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_devstack.register_gen import COLUMNS, Counts, generate
from comuna_identity import imports_cli
from comuna_identity.service import SPEC
from comuna_identity.settings import Settings
from comuna_identity.storage.models import Territory, TerritoryVersion
from comuna_platform.auth.roles import Role
from tests.identity.authority import OPERATOR, REGISTRAR, grant, person
from tests.identity.conftest import CENSUS_KEY, MIGRATIONS
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

pytestmark = pytest.mark.asyncio

SMALL = Counts(states=2, municipalities=3, parishes=4, communes=5, circuits=2, councils=20)


@pytest_asyncio.fixture
async def empty_identity(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[RunningService]:
    """Identity over an empty register of its own (the file brings the country root)."""
    url = fresh_database(embedded_postgres, f"identity_import_{uuid.uuid4().hex[:8]}", MIGRATIONS)
    async with running_service(
        SPEC, Settings, database_url=url, nats_url=embedded_nats.url, issuer=issuer, census_hash_key=CENSUS_KEY
    ) as service:
        yield service


def as_csv(rows: list[tuple[str, ...]], header: tuple[str, ...] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


async def counts(service: RunningService) -> tuple[int, int]:
    async with service.runtime.db.transaction() as session:
        units = (await session.execute(select(func.count()).select_from(Territory))).scalar_one()
        versions = (await session.execute(select(func.count()).select_from(TerritoryVersion))).scalar_one()
        return int(units), int(versions)


async def import_file(service: RunningService, issuer: TestIssuer, body: bytes, media: str = "text/csv") -> Any:
    headers = {**person(issuer, OPERATOR), "content-type": media}
    return await service.client.post("/v1/territories:import", content=body, headers=headers)


async def operator_at_root(service: RunningService) -> None:
    await grant(service, OPERATOR, Role.OPERATOR, "VE")


async def test_import_twice_then_export_round_trips(empty_identity: RunningService, issuer: TestIssuer) -> None:
    service = empty_identity
    rows = list(generate(seed=7, counts=SMALL))
    # The first import creates the root too: the operator's assignment needs the root to exist,
    # so the very first file goes in through the CLI (database credentials are the authority).
    first = await run_cli(service, rows, "register.csv")
    assert first == (0, f"imported: {len(rows)} created, 0 changed, 0 unchanged ({len(rows)} rows)\n", "")
    await operator_at_root(service)
    again = await import_file(service, issuer, as_csv(rows))
    assert again.status_code == 200, again.text
    assert again.json() == {"created": 0, "changed": 0, "unchanged": len(rows), "total": len(rows), "changes": False}
    assert await counts(service) == (len(rows), len(rows))

    exported = await service.client.get("/v1/territories:export", params={"format": "csv"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(exported.text)))
    assert tuple(lines[0]) == COLUMNS
    assert sorted(tuple(line) for line in lines[1:]) == sorted(rows)
    # Parents come first in the export: every parent_code was seen before its row.
    seen: set[str] = set()
    for code, _, _, parent, _, _ in lines[1:]:
        assert not parent or parent in seen
        seen.add(code)

    as_json = await service.client.get("/v1/territories:export", params={"format": "json"})
    items = json.loads(as_json.text)
    assert len(items) == len(rows) and items[0]["kind"] == "country"
    # Re-importing the JSON export changes nothing either.
    back = await import_file(service, issuer, as_json.content, "application/json")
    assert back.json()["changes"] is False


async def test_changes_in_a_file_extend_history(empty_identity: RunningService, issuer: TestIssuer) -> None:
    service = empty_identity
    rows = list(generate(seed=7, counts=SMALL))
    await run_cli(service, rows, "register.csv")
    await operator_at_root(service)
    communes = [r for r in rows if r[2] == "commune"]
    councils = [r for r in rows if r[2] == "communal_council"]
    circuit = next(r for r in rows if r[2] == "communal_circuit")
    moved = next(r for r in councils if r[3] != communes[0][0])
    edited = [
        (moved[0], moved[1], moved[2], communes[0][0], "2025-03-01", "active"),  # a move
        (circuit[0], "Comuna Consolidada", "commune", circuit[3], "2025-03-01", "active"),  # a promotion + rename
        ("CCNEW1", "Consejo Nuevo", "communal_council", communes[0][0], "2025-03-01", "active"),  # a new unit
    ]
    response = await import_file(service, issuer, as_csv(edited))
    assert response.json() == {"created": 1, "changed": 2, "unchanged": 0, "total": 3, "changes": True}
    detail = (await service.client.get(f"/v1/territories/{moved[0]}", params={"as_of": "2025-02-28"})).json()
    assert detail["ancestors"][-1]["code"] == moved[3]
    detail = (await service.client.get(f"/v1/territories/{moved[0]}", params={"as_of": "2025-03-01"})).json()
    assert detail["ancestors"][-1]["code"] == communes[0][0]
    promoted = (await service.client.get(f"/v1/territories/{circuit[0]}")).json()
    assert (promoted["kind"], promoted["name"], len(promoted["history"])) == ("commune", "Comuna Consolidada", 2)
    # An export as of before the changes is the original register.
    old = await service.client.get("/v1/territories:export", params={"as_of": "2024-12-31"})
    assert sorted(tuple(line) for line in list(csv.reader(io.StringIO(old.text)))[1:]) == sorted(rows)


async def test_a_bad_file_is_refused_whole_with_every_bad_line(
    empty_identity: RunningService, issuer: TestIssuer
) -> None:
    service = empty_identity
    rows = list(generate(seed=7, counts=SMALL))
    await run_cli(service, rows, "register.csv")
    await operator_at_root(service)
    before = await counts(service)
    state = next(r[0] for r in rows if r[2] == "state")
    bad = [
        ("OK1", "Consejo Bien", "communal_council", rows[-1][3], "2025-01-01", "active"),  # line 2: fine
        ("X1", "Huerfano", "communal_council", "NOWHERE", "2025-01-01", "active"),  # 3: unknown parent
        ("X2", "Suelto", "communal_council", state, "2025-01-01", "active"),  # 4: council under a state
        ("OK1", "Otra Vez", "communal_council", rows[-1][3], "2025-01-01", "active"),  # 5: duplicate code
        ("X3", "Fecha", "communal_council", rows[-1][3], "2025-02-30", "active"),  # 6: impossible date
        ("X4", "Planeta", "planet", state, "2025-01-01", "active"),  # 7: bad kind
        ("X5", "Ciclo A", "municipality", "X6", "2025-01-01", "active"),  # 8: a cycle...
        ("X6", "Ciclo B", "state", "X5", "2025-01-01", "active"),  # 9: ...back to line 8
    ]
    response = await import_file(service, issuer, as_csv(bad))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "import_invalid"
    found = {(e["line"], e["code"]) for e in problem["errors"]}
    assert {
        (3, "territory_parent_unknown"),
        (4, "territory_parent_invalid"),
        (5, "code_duplicate"),
        (6, "date_invalid"),
        (7, "territory_kind_invalid"),
        (8, "territory_cycle"),
        (9, "territory_cycle"),
    } <= found
    assert not any(line == 2 for line, _ in found)
    assert await counts(service) == before

    # The same file through the CLI: exit 2, one line on stderr, each error as JSON on stdout.
    status, out, err = await run_cli(service, bad, "bad.csv")
    assert status == 2
    listed = [json.loads(line) for line in out.splitlines()]
    assert {(e["line"], e["code"]) for e in listed} == found
    assert {"line": 3, "field": "parent_code"}.items() <= next(e for e in listed if e["line"] == 3).items()
    assert err.count("\n") == 1 and err.startswith("comuna-identity import: the file was refused")
    assert await counts(service) == before


@pytest.mark.parametrize(
    ("body", "media", "status", "code"),
    [
        (b"code,name\nA,B\n", "text/csv", 422, "import_invalid"),  # missing columns
        (b"", "text/csv", 422, "import_invalid"),
        (b"[1, 2]", "application/json", 422, "import_invalid"),
        (b"code,name,kind,parent_code,valid_from\n", "application/xml", 415, "unsupported_media_type"),
    ],
)
async def test_unreadable_files_are_problems(
    empty_identity: RunningService, issuer: TestIssuer, body: bytes, media: str, status: int, code: str
) -> None:
    await run_cli(empty_identity, [("VE", "Venezuela", "country", "", "2000-01-01", "active")], "root.csv")
    await operator_at_root(empty_identity)
    response = await import_file(empty_identity, issuer, body, media)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


async def test_only_a_national_operator_imports(empty_identity: RunningService, issuer: TestIssuer) -> None:
    await run_cli(empty_identity, [("VE", "Venezuela", "country", "", "2000-01-01", "active")], "root.csv")
    await grant(empty_identity, REGISTRAR, Role.REGISTRAR, "VE")
    headers = {**person(issuer, REGISTRAR), "content-type": "text/csv"}
    response = await empty_identity.client.post("/v1/territories:import", content=as_csv([]), headers=headers)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden_role")


async def test_an_import_streams_past_the_body_limit_up_to_its_own(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> None:
    """Bigger than MAX_BODY_BYTES is fine for an import; bigger than MAX_IMPORT_BYTES is a 413,
    whether the length is declared (the edge) or only counted while it streams (the route)."""
    url = fresh_database(embedded_postgres, f"identity_import_{uuid.uuid4().hex[:8]}", MIGRATIONS)
    async with running_service(
        SPEC,
        Settings,
        database_url=url,
        nats_url=embedded_nats.url,
        issuer=issuer,
        census_hash_key=CENSUS_KEY,
        max_body_bytes=64 * 1024,
        max_import_bytes=512 * 1024,
    ) as service:
        rows = list(
            generate(seed=2, counts=Counts(municipalities=30, parishes=100, communes=300, circuits=100, councils=4_000))
        )
        body = as_csv(rows)
        assert 64 * 1024 < len(body) < 512 * 1024
        await run_cli(service, rows[:1], "root.csv")
        await operator_at_root(service)
        response = await import_file(service, issuer, body)
        assert response.status_code == 200, response.text
        assert response.json()["created"] == len(rows) - 1

        too_big = body * 2
        declared = await import_file(service, issuer, too_big)
        assert (declared.status_code, declared.json()["code"]) == (413, "payload_too_large")

        async def stream() -> AsyncIterator[bytes]:
            for start in range(0, len(too_big), 64 * 1024):
                yield too_big[start : start + 64 * 1024]

        headers = {**person(issuer, OPERATOR), "content-type": "text/csv"}
        counted = await service.client.post("/v1/territories:import", content=stream(), headers=headers)
        assert (counted.status_code, counted.json()["code"]) == (413, "payload_too_large")
        assert await counts(service) == (len(rows), len(rows))


async def run_cli(service: RunningService, rows: list[tuple[str, ...]], name: str) -> tuple[int, str, str]:
    """`comuna-identity import territories FILE` in a thread (it runs its own event loop)."""
    path = _scratch() / f"{uuid.uuid4().hex[:8]}-{name}"
    path.write_bytes(as_csv(rows))
    try:
        return await asyncio.to_thread(_run_cli_sync, service.runtime.settings.database_url, path)
    finally:
        path.unlink()


def _scratch() -> Path:
    from comuna_devstack.locations import cache_root

    path = cache_root() / "scratch" / "register-import-tests"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_cli_sync(database_url: str, path: Path) -> tuple[int, str, str]:
    import contextlib
    import os

    parser_args = imports_cli.argparse.Namespace(what="territories", file=path, format=None)
    out, err = io.StringIO(), io.StringIO()
    previous = os.environ.get("COMUNA_IDENTITY_DATABASE_URL")
    os.environ["COMUNA_IDENTITY_DATABASE_URL"] = database_url
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = imports_cli.run(parser_args)
    finally:
        if previous is None:
            os.environ.pop("COMUNA_IDENTITY_DATABASE_URL", None)
        else:
            os.environ["COMUNA_IDENTITY_DATABASE_URL"] = previous
    return status, out.getvalue(), err.getvalue()
