"""No document number in clear anywhere after imports (REST and CLI, good and bad files): not in
any table of identity's database, its logs, its outbox or NATS stream, its trace spans, nor in
any answer or error it gave."""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.service import SPEC
from comuna_identity.settings import Settings
from comuna_platform.events.registry import stream_name
from tests.identity.authority import REGISTRAR, person
from tests.identity.conftest import CENSUS_KEY, MIGRATIONS, ROLL_SECRET
from tests.identity.test_census_import import cli, csv_of
from tests.identity.test_registry_api import seed
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service
from tests.support.tracing import captured_spans

pytestmark = pytest.mark.asyncio

# The test register exists from before every residence the files declare.
REGISTER_SINCE = "2000-01-01"

CC1 = "VE.01.01.C1.CC1"
CC2 = "VE.01.01.C2.CC1"
# Ten digits (and passports with letters beyond hex): no chance to appear inside a hex digest by accident.
CEDULAS = [9_876_500_000 + i * 7 for i in range(40)]
PASSPORTS = [f"ZKQ{7_654_300 + i}" for i in range(5)]


def spellings(number: str) -> list[str]:
    """The number and the ways people and registers separate its digits."""
    if not number.isdigit():
        return [number, number.lower()]
    grouped = f"{int(number):,}"
    return [number, grouped.replace(",", "."), grouped.replace(",", "-"), grouped.replace(",", " "), grouped]


ALL_SPELLINGS = [s for n in [*map(str, CEDULAS), *PASSPORTS] for s in spellings(n)]


def leaks(haystack: str) -> list[str]:
    return [s for s in ALL_SPELLINGS if s in haystack]


def pg_dump(postgres: EmbeddedPostgres, database: str) -> str:
    """Every row of every table of `database`, as text (bytea in hex)."""
    return subprocess.run(
        [str(postgres.bin_dir / "pg_dump"), "--data-only", "--dbname", postgres.dsn(database).replace("+asyncpg", "")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.getMessage()} {record.__dict__!r}")


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    with captured_spans() as exporter:
        yield exporter


@pytest.fixture(scope="module")
def logs() -> Iterator[Collect]:
    handler = Collect()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest_asyncio.fixture(scope="module")
async def scanned(
    spans: InMemorySpanExporter,
    logs: Collect,
    embedded_postgres: EmbeddedPostgres,
    embedded_nats: EmbeddedNats,
    issuer: TestIssuer,
) -> AsyncIterator[tuple[RunningService, str]]:
    name = f"identity_scan_{uuid.uuid4().hex[:8]}"
    url = fresh_database(embedded_postgres, name, MIGRATIONS)
    async with running_service(
        SPEC,
        Settings,
        database_url=url,
        nats_url=embedded_nats.url,
        issuer=issuer,
        census_hash_key=CENSUS_KEY,
        roll_secret=ROLL_SECRET,
    ) as service:
        yield service, name


async def test_no_document_number_anywhere(
    scanned: tuple[RunningService, str],
    spans: InMemorySpanExporter,
    logs: Collect,
    embedded_postgres: EmbeddedPostgres,
    embedded_nats: EmbeddedNats,
    issuer: TestIssuer,
    tmp_path: Path,
) -> None:
    service, database = scanned
    await seed(service, issuer, since=REGISTER_SINCE)
    answers: list[str] = []
    headers = {**person(issuer, REGISTRAR), "content-type": "text/csv"}

    def row(doc_type: str, number: str, council: str = CC1, since: str = "2020-01-01") -> tuple[str, ...]:
        return (doc_type, number, "1985-07-01", council, since, "")

    rest = [row("V", spellings(str(n))[i % 4]) for i, n in enumerate(CEDULAS[:20])]
    rest += [row("P", p) for p in PASSPORTS]
    for body in (
        csv_of(rest),
        csv_of([*rest[:3], row("V", str(CEDULAS[0]), CC2), row("V", f"{CEDULAS[1]}X")]),  # bad: twice, bad document
    ):
        answers.append((await service.client.post("/v1/residents:import", content=body, headers=headers)).text)
    moved = {"national_id": spellings(str(CEDULAS[2]))[1], "council_code": CC2, "valid_from": "2025-01-01"}
    answers.append(
        (await service.client.post("/v1/residents:move", json=moved, headers=person(issuer, REGISTRAR))).text
    )
    missing = {**moved, "national_id": str(CEDULAS[-1])}
    answers.append(
        (await service.client.post("/v1/residents:move", json=missing, headers=person(issuer, REGISTRAR))).text
    )
    batch = {
        "residents": [{"national_id": str(n), "birth_date": "1990-01-01", "council_code": CC1} for n in CEDULAS[20:25]]
    }
    answers.append(
        (await service.client.post("/v1/residents:batch", json=batch, headers=person(issuer, REGISTRAR))).text
    )
    answers.append(
        (await service.client.post("/v1/residents:batch", json=batch, headers=person(issuer, REGISTRAR))).text
    )

    good = tmp_path / "good.csv"
    good.write_bytes(csv_of([row("E", spellings(str(n))[2]) for n in CEDULAS[25:38]]))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_of([row("V", str(CEDULAS[38])), row("V", str(CEDULAS[38])), row("V", f"{CEDULAS[39]}X")]))
    for path in (good, bad):
        done = cli(service, "import", "residents", str(path))
        answers.append(done.stdout + done.stderr)
    assert "13 changes" in answers[-2] and "2 bad row" in answers[-1]
    assert '"created":25' in answers[0].replace(" ", "")

    dump = pg_dump(embedded_postgres, database)
    assert "resident_residences" in dump and "census_keys" in dump

    js = service.runtime.js
    stream = stream_name("identity")
    info = await js.stream_info(stream)
    messages = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            message = await js.get_msg(stream, seq)
        except Exception:  # a sequence deleted from the stream
            continue
        messages.append(repr(message.data) + repr(message.headers))
    assert messages

    finished = spans.get_finished_spans()
    span_text = [f"{s.name} {dict(s.attributes or {})!r} {[e.attributes for e in s.events]!r}" for s in finished]
    assert any("residents:import" in s for s in span_text)

    # The scan sees a number however it is written.
    assert leaks(f"x{spellings(str(CEDULAS[3]))[1]}y") and leaks(PASSPORTS[0].lower())
    assert leaks(dump) == []
    assert leaks("\n".join(logs.records)) == []
    assert leaks("\n".join(messages)) == []
    assert leaks("\n".join(span_text)) == []
    assert leaks("\n".join(answers)) == []
