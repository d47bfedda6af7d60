"""Bulk import of the census over REST and the CLI, against real PostgreSQL: upsert by document,
moves with history, all-or-nothing with every bad line listed, the caller's reach."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from comuna_identity.domain import audit
from comuna_identity.storage.models import Resident, ResidentResidence
from comuna_platform.auth.roles import Role
from tests.identity.authority import REGISTRAR, grant, person
from tests.identity.conftest import CENSUS_KEY, ROLL_SECRET
from tests.identity.test_registry_api import seed
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

# The test register exists from before every residence the files declare.
REGISTER_SINCE = "2000-01-01"

CC1 = "VE.01.01.C1.CC1"
CC2 = "VE.01.01.C2.CC1"
C1_ONLY = "subject-registrar-c1-only"


def csv_of(rows: Sequence[tuple[str, ...]], header: bool = True) -> bytes:
    lines = ["document_type,document_number,birth_date,council_code,valid_from,status"] if header else []
    lines += [",".join(row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


async def post_csv(service: RunningService, issuer: TestIssuer, body: bytes, who: str = REGISTRAR) -> Any:
    headers = {**person(issuer, who), "content-type": "text/csv"}
    return await service.client.post("/v1/residents:import", content=body, headers=headers)


async def scalar(service: RunningService, query: Any) -> Any:
    async with service.runtime.db.transaction() as session:
        return (await session.execute(query)).scalar_one()


async def census_counts(service: RunningService) -> tuple[int, int]:
    residents = await scalar(service, select(func.count()).select_from(Resident))
    residences = await scalar(service, select(func.count()).select_from(ResidentResidence))
    return int(residents), int(residences)


def people(start: int, n: int, council: str, since: str = "2020-01-01") -> list[tuple[str, ...]]:
    return [("V", f"{start + i:,}".replace(",", "."), "1980-05-01", council, since, "") for i in range(n)]


async def test_import_upserts_moves_and_says_when_nothing_changed(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer, since=REGISTER_SINCE)
    rows = people(41_000_000, 30, CC1) + people(41_000_030, 10, CC2)
    first = await post_csv(identity, issuer, csv_of(rows))
    assert first.status_code == 200, first.text
    assert first.json() | {"summary": ""} == {
        "rows": 40,
        "changes": 40,
        "created": 40,
        "moved": 0,
        "updated": 0,
        "unchanged": 0,
        "roll_bases_computed": 40,
        "summary": "",
    }
    again = await post_csv(identity, issuer, csv_of(rows))
    assert again.json()["changes"] == 0
    assert "0 changes" in again.json()["summary"]

    # Two move to CC2 from 2024, one becomes deceased; written differently, still the same people.
    changed = list(rows)
    changed[0] = ("v", "41000000", "1980-05-01", CC2, "2024-03-01", "")
    changed[1] = ("", "V-41.000.001", "1980-05-01", CC2, "2024-03-01", "")
    changed[2] = ("V", "４１０００００２", "1980-05-01", CC1, "2024-06-01", "deceased")
    third = await post_csv(identity, issuer, csv_of(changed))
    assert third.status_code == 200, third.text
    assert (third.json()["created"], third.json()["moved"], third.json()["updated"]) == (0, 2, 1)

    async with identity.runtime.db.transaction() as session:
        history = (
            await session.execute(
                text(
                    "SELECT t.code, rr.valid_from, rr.valid_until FROM resident_residences rr"
                    " JOIN territories t ON t.id = rr.council_id WHERE rr.resident_id ="
                    " (SELECT resident_id FROM resident_residences GROUP BY resident_id HAVING count(*) = 2 LIMIT 1)"
                    " ORDER BY rr.valid_from"
                )
            )
        ).all()
        statuses = (
            await session.execute(text("SELECT status, status_since FROM residents WHERE status <> 'active'"))
        ).all()
        without_roll_base = (
            await session.execute(text("SELECT count(*) FROM residents WHERE roll_base IS NULL"))
        ).scalar_one()
    assert [(h[0], h[1], h[2]) for h in history] == [
        (CC1, date(2020, 1, 1), date(2024, 3, 1)),
        (CC2, date(2024, 3, 1), None),
    ]
    assert [(s[0], s[1]) for s in statuses] == [("deceased", date(2024, 6, 1))]
    assert without_roll_base == 0
    assert (await post_csv(identity, issuer, csv_of(changed))).json()["changes"] == 0

    # A move that would rewrite history (before the current residence began) is refused.
    back = [("V", "41000000", "1980-05-01", CC1, "2023-01-01", "")]
    refused = await post_csv(identity, issuer, csv_of(back))
    assert refused.status_code == 422
    assert [(e["line"], e["code"]) for e in refused.json()["errors"]] == [(2, "valid_from_before_residence")]


async def test_a_bad_file_writes_nothing_and_lists_every_bad_line(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer, since=REGISTER_SINCE)
    before = await census_counts(identity)
    rows = [
        ("V", "42000001", "1980-01-01", CC1, "2020-01-01", ""),  # line 2: fine
        ("V", "not-a-number-42000002", "1980-01-01", CC1, "2020-01-01", ""),  # 3: bad document
        ("V", "42000003", "1980-02-30", CC1, "2020-01-01", ""),  # 4: impossible date
        ("V", "42000004", "1980-01-01", "VE.01.01.C1.CC404", "2020-01-01", ""),  # 5: unknown council
        ("V", "42000005", "1980-01-01", "VE.01.01.C1", "2020-01-01", ""),  # 6: a commune, not a council
        ("V", "42.000.001", "1980-01-01", CC2, "2020-01-01", ""),  # 7: line 2's person again
        ("V", "42000007", "1980-01-01", CC1, "2020-01-01", "emigrated"),  # 8: bad status
        ("V", "42000008", "2030-01-01", CC1, "2031-01-01", ""),  # 9: born in the future
        ("V", "42000009", "1980-01-01", CC1, "1979-01-01", ""),  # 10: living there before birth
        ("X", "42000010", "1980-01-01", CC1, "2020-01-01", ""),  # 11: bad document type
    ]
    response = await post_csv(identity, issuer, csv_of(rows))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "import_invalid"
    assert [(e["line"], e["code"]) for e in problem["errors"]] == [
        (3, "document_invalid"),
        (4, "date_invalid"),
        (5, "council_not_found"),
        (6, "council_not_found"),
        (7, "duplicate_resident"),
        (8, "status_invalid"),
        (9, "birth_date_invalid"),
        (9, "valid_from_invalid"),
        (10, "valid_from_invalid"),
        (11, "document_invalid"),
    ]
    assert problem["error_count"] == 10
    assert "42000001" not in response.text and "42000002" not in response.text
    assert await census_counts(identity) == before
    # A row of the wrong shape makes the file unreadable: refused at once, naming the line.
    short = await post_csv(identity, issuer, csv_of([*rows[:1], ("V", "42000011", "1980-01-01")]))
    assert short.status_code == 422
    assert [(e["line"], e["code"]) for e in short.json()["errors"]] == [(3, "row_shape")]
    assert await census_counts(identity) == before


async def test_json_import(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer, since=REGISTER_SINCE)
    before = await census_counts(identity)
    items = [
        {
            "document_type": "V",
            "document_number": "46000001",
            "birth_date": "1970-01-01",
            "council_code": CC1,
            "valid_from": "2021-01-01",
        },
        {
            "document_type": "P",
            "document_number": "zk46000002",
            "birth_date": "1971-01-01",
            "council_code": CC2,
            "valid_from": "2021-01-01",
            "status": "inactive",
        },
    ]
    headers = {**person(issuer, REGISTRAR), "content-type": "application/json"}
    done = await identity.client.post("/v1/residents:import", json=items, headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["created"] == 2
    assert await census_counts(identity) == (before[0] + 2, before[1] + 2)


async def test_the_importer_covers_every_council_of_the_file(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer, since=REGISTER_SINCE)
    await grant(identity, C1_ONLY, Role.REGISTRAR, "VE.01.01.C1")
    before = await census_counts(identity)
    rows = people(43_000_000, 3, CC1) + people(43_000_003, 1, CC2)
    refused = await post_csv(identity, issuer, csv_of(rows), who=C1_ONLY)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden_territory"
    assert await census_counts(identity) == before
    spokesperson = await post_csv(identity, issuer, csv_of(rows[:3]), who="subject-nobody")
    assert spokesperson.status_code == 403
    allowed = await post_csv(identity, issuer, csv_of(rows[:3]), who=C1_ONLY)
    assert allowed.status_code == 200 and allowed.json()["created"] == 3
    wrong_type = await identity.client.post(
        "/v1/residents:import",
        content=csv_of(rows[:1]),
        headers={**person(issuer, REGISTRAR), "content-type": "text/plain"},
    )
    assert wrong_type.status_code == 415 and wrong_type.json()["code"] == "unsupported_media_type"


async def council_of(service: RunningService, national_id: str) -> str:
    """The code of the council `national_id` lives in now (by its hash, as identity finds it)."""
    async with service.runtime.db.transaction() as session:
        resident = await service.app.state.census.find(session, national_id)
        assert resident is not None
        query = text(
            "SELECT t.code FROM resident_residences rr JOIN territories t ON t.id = rr.council_id"
            " WHERE rr.resident_id = :id AND rr.valid_until IS NULL"
        )
        return str((await session.execute(query, {"id": resident.id})).scalar_one())


async def test_an_import_does_not_move_people_out_of_councils_the_importer_does_not_cover(
    identity: RunningService, issuer: TestIssuer
) -> None:
    """Someone living in C2's council, in a file of C1's council from a registrar of C1 only: the
    whole file is refused with one 403 that says neither which line nor where that person lives,
    before any line is listed, and nothing is written (not even the new people of the file)."""
    await seed(identity, issuer, since=REGISTER_SINCE)
    await grant(identity, C1_ONLY, Role.REGISTRAR, "VE.01.01.C1")
    elsewhere = people(48_500_000, 1, CC2)
    assert (await post_csv(identity, issuer, csv_of(elsewhere))).status_code == 200
    before = await census_counts(identity), await scalar(identity, text("SELECT count(*) FROM audit_log"))
    new_here = people(48_500_001, 2, CC1)
    files = {
        "moved in": [*new_here, ("V", "48500000", "1980-05-01", CC1, "2024-01-01", "")],
        # Before the person's residence began: listing this line as 422 would say when they moved.
        "moved in before": [*new_here, ("V", "48500000", "1980-05-01", CC1, "2019-01-01", "")],
        # Another status changes nothing of this: still a move out of C2.
        "moved in dead": [("V", "48.500.000", "1980-05-01", CC1, "2024-01-01", "deceased"), *new_here],
    }
    for name, rows in files.items():
        refused = await post_csv(identity, issuer, csv_of(rows), who=C1_ONLY)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_territory"), (name, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"] == (
            "the file moves residents out of councils outside the caller's scope (not said which)"
        )
        for revealing in (CC2, "VE.01.01.C2", "Consejo Dos", "Circuito Dos", "48500000", "line", "errors"):
            assert revealing not in refused.text, (name, revealing)
        assert (await census_counts(identity), await scalar(identity, text("SELECT count(*) FROM audit_log"))) == (
            before
        )
    assert await council_of(identity, "V48500000") == CC2
    # Without that person the file goes in, and the counts say nothing of anyone out of scope.
    done = await post_csv(identity, issuer, csv_of(new_here), who=C1_ONLY)
    assert (done.status_code, done.json()["created"], done.json()["moved"]) == (200, 2, 0), done.text
    # Out of a council the importer covers, a move is no business of the scope check.
    await grant(identity, "subject-registrar-c1-c2", Role.REGISTRAR, "VE.01.01.C1")
    await grant(identity, "subject-registrar-c1-c2", Role.REGISTRAR, "VE.01.01.C2")
    back = [
        ("V", "48500001", "1980-05-01", CC2, "2024-01-01", ""),
        ("V", "48500000", "1980-05-01", CC1, "2024-01-01", ""),
    ]
    both = await post_csv(identity, issuer, csv_of(back), who="subject-registrar-c1-c2")
    assert (both.status_code, both.json()["moved"]) == (200, 2), both.text
    assert (await council_of(identity, "V48500000"), await council_of(identity, "V48500001")) == (CC1, CC2)


async def test_one_resident_moves_over_rest(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer, since=REGISTER_SINCE)
    assert (await post_csv(identity, issuer, csv_of(people(44_000_000, 1, CC1)))).status_code == 200
    body = {"national_id": "V-44.000.000", "council_code": CC2, "valid_from": "2025-02-01"}
    headers = person(issuer, REGISTRAR)
    moved = await identity.client.post("/v1/residents:move", json=body, headers=headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["moved"] is True
    again = await identity.client.post("/v1/residents:move", json=body, headers=headers)
    assert again.json() == {"id": moved.json()["id"], "moved": False}
    earlier = await identity.client.post(
        "/v1/residents:move", json={**body, "council_code": CC1, "valid_from": "2025-01-01"}, headers=headers
    )
    assert earlier.status_code == 422 and earlier.json()["code"] == "valid_from_before_residence"
    unknown = await identity.client.post(
        "/v1/residents:move", json={**body, "national_id": "V44999999"}, headers=headers
    )
    assert unknown.status_code == 404 and "44999999" not in unknown.text
    await grant(identity, C1_ONLY, Role.REGISTRAR, "VE.01.01.C1")
    # Out of reach: the resident lives in C2's council now. The refusal names the council of the
    # request, never the one the resident lives in, and nothing moves.
    residences = await census_counts(identity)
    stolen = await identity.client.post(
        "/v1/residents:move",
        json={**body, "council_code": CC1, "valid_from": "2025-06-01"},
        headers=person(issuer, C1_ONLY),
    )
    assert (stolen.status_code, stolen.json()["code"]) == (403, "forbidden_territory")
    assert stolen.json()["detail"] == f"not allowed to act in territory {CC1}"
    assert CC2 not in stolen.text and "VE.01.01.C2" not in stolen.text and "Consejo Dos" not in stolen.text
    assert await census_counts(identity) == residences
    assert (await identity.client.post("/v1/residents:move", json=body, headers=headers)).json()["moved"] is False


def cli_env(service: RunningService) -> dict[str, str]:
    settings = service.runtime.settings
    return {
        **os.environ,
        "COMUNA_IDENTITY_DATABASE_URL": settings.database_url,
        "COMUNA_IDENTITY_CENSUS_HASH_KEY": CENSUS_KEY,
        "COMUNA_IDENTITY_ROLL_SECRET": ROLL_SECRET,
    }


def cli(service: RunningService, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "comuna-identity"), *args],
        env=cli_env(service),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_cli_imports_a_file_through_the_process_pool(
    identity: RunningService, issuer: TestIssuer, tmp_path: Path
) -> None:
    await seed(identity, issuer, since=REGISTER_SINCE)
    before = await census_counts(identity)
    big = tmp_path / "residents.csv"
    # Over one chunk: the hashing runs in worker processes.
    big.write_bytes(csv_of(people(45_000_000, 6000, CC1) + people(45_006_000, 1500, CC2)))
    done = cli(identity, "import", "residents", str(big), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) | {"summary": "", "seconds": {}, "peak_rss_mb": {}} == {
        "rows": 7500,
        "changes": 7500,
        "created": 7500,
        "moved": 0,
        "updated": 0,
        "unchanged": 0,
        "roll_bases_computed": 7500,
        "summary": "",
        "seconds": {},
        "peak_rss_mb": {},
    }
    assert await census_counts(identity) == (before[0] + 7500, before[1] + 7500)
    again = cli(identity, "import", "residents", str(big))
    assert again.returncode == 0 and "0 changes" in again.stdout

    # A re-import computes no point for the people the census holds; one without a roll base
    # (as the records from before roll bases existed) gets it back, as an update.
    async with identity.runtime.db.transaction() as session:
        # One of this file's people: the last import that created anyone.
        await session.execute(
            text(
                "UPDATE residents SET roll_base = NULL"
                " WHERE id = (SELECT id FROM residents ORDER BY registered_at DESC LIMIT 1)"
            )
        )
    refilled = json.loads(cli(identity, "import", "residents", str(big), "--json").stdout)
    assert (refilled["changes"], refilled["updated"], refilled["roll_bases_computed"]) == (1, 1, 1)
    async with identity.runtime.db.transaction() as session:
        missing_bases = (
            await session.execute(text("SELECT count(*) FROM residents WHERE roll_base IS NULL"))
        ).scalar_one()
    assert missing_bases == 0

    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_of([*people(45_100_000, 2, CC1), ("V", "45100000", "1980-01-01", CC1, "2020-01-01", "")]))
    refused = cli(identity, "import", "residents", str(bad))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "1 bad row" in refused.stderr
    assert '"line": 4' in refused.stdout and '"duplicate_resident"' in refused.stdout
    assert "45100000" not in refused.stdout + refused.stderr
    assert await census_counts(identity) == (before[0] + 7500, before[1] + 7500)
    missing = cli(identity, "import", "residents", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2


async def test_every_created_or_changed_record_is_audited_without_its_document(
    identity: RunningService, issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(identity, issuer, since=REGISTER_SINCE)
    entries: list[audit.AuditEntry] = []
    real_append = audit.append

    async def spy(session: Any, batch: Any) -> None:
        entries.extend(batch)
        await real_append(session, batch)

    monkeypatch.setattr(audit, "append", spy)
    rows = people(47_000_000, 3, CC1)
    assert (await post_csv(identity, issuer, csv_of(rows))).status_code == 200
    moved = [("V", "47000001", "1980-05-01", CC2, "2024-01-01", ""), *rows[2:]]
    second = await post_csv(identity, issuer, csv_of(moved))
    assert second.status_code == 200, second.text
    assert second.json()["moved"] == 1
    assert [e.action for e in entries] == ["resident.registered"] * 3 + ["resident.moved"]
    assert all(e.actor == REGISTRAR and e.object_kind == "resident" for e in entries)
    before, after = entries[3].before, entries[3].after
    assert before is not None and after is not None and entries[3].object_id == entries[1].object_id
    assert (before["council_code"], after["council_code"]) == (CC1, CC2)
    assert (before["resident_since"], after["resident_since"]) == ("2020-01-01", "2024-01-01")
    assert entries[0].before is None and entries[0].after is not None and entries[0].after["status"] == "active"
    assert "47000001" not in repr(entries) and "47.000.001" not in repr(entries)
