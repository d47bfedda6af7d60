"""`comuna-<service> parked list|show|replay`, run as operators run it (a subprocess of funding's
console script) against a real migrated database and NATS."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.service import SPEC
from comuna_funding.storage.models import Allocation
from comuna_platform.cli import run_cli
from comuna_platform.db import Database
from comuna_platform.events.parking import Delivery, ParkReason, park
from comuna_platform.events.tables import parked_table
from tests.funding.conftest import MIGRATIONS
from tests.platform.consumers import headers_for
from tests.support.service import fresh_database

in_loop = pytest.mark.asyncio(loop_scope="module")

SCRIPT = Path(sys.executable).parent / "comuna-funding"
CONSUMER = "funding-commune-results"


@pytest.fixture(scope="module")
def database_url(embedded_postgres: EmbeddedPostgres) -> str:
    return fresh_database(embedded_postgres, f"funding_cli_{uuid.uuid4().hex[:8]}", MIGRATIONS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    await database.dispose()


def certified(consultation_id: uuid.UUID) -> consultation_events.CommuneResultCertified:
    winner = str(uuid.uuid4())
    return consultation_events.CommuneResultCertified(
        consultation_id=str(consultation_id),
        consultation_code="2026-Q4",
        result=consultation_events.CommuneResult(
            commune_id=str(uuid.uuid4()),
            commune_code="VE.01.01.C0001",
            commune_name="Uno",
            ballots=3,
            winner_candidate_id=winner,
            candidates=[consultation_events.CandidateResult(candidate_id=winner, title="Agua", votes=3, rank=1)],
        ),
    )


async def park_certified(db: Database, seq: int) -> tuple[int, uuid.UUID]:
    """A certified result funding failed to apply, as its consumer would have parked it."""
    consultation_id = uuid.uuid4()
    headers = headers_for("comuna.consultations.v1.CommuneResultCertified", source="/comuna/consultations")
    await park(
        db,
        Delivery(
            consumer=CONSUMER,
            stream="CONSULTATIONS",
            subject="consultations.commune_result.certified",
            stream_seq=seq,
            headers=headers,
            payload=certified(consultation_id).SerializeToString(),
            deliveries=5,
        ),
        reason=ParkReason.HANDLER_FAILED,
        error="OperationalError: relation does not exist",
        event_id=uuid.UUID(headers["ce-id"]),
        event_type="comuna.consultations.v1.CommuneResultCertified",
    )
    async with db.transaction() as session:
        parked_id = (
            await session.execute(
                select(parked_table.c.id).where(parked_table.c.consumer == CONSUMER, parked_table.c.stream_seq == seq)
            )
        ).scalar_one()
    return int(parked_id), consultation_id


async def cli(database_url: str, nats: EmbeddedNats, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COMUNA_FUNDING_DATABASE_URL": database_url,
        "COMUNA_FUNDING_NATS_URL": nats.url,
        "COMUNA_FUNDING_LOG_LEVEL": "WARNING",
    }
    command = [str(SCRIPT), "parked", *args]
    return await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120)


async def allocations_of(db: Database, consultation_id: uuid.UUID) -> int:
    async with db.transaction() as session:
        query = select(func.count()).select_from(Allocation).where(Allocation.consultation_id == consultation_id)
        return int((await session.execute(query)).scalar_one())


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@in_loop
async def test_list_show_and_replay_once(database_url: str, db: Database, embedded_nats: EmbeddedNats) -> None:
    parked_id, consultation_id = await park_certified(db, 1)

    listed = await cli(database_url, embedded_nats, "list")
    assert listed.returncode == 0, listed.stderr
    [row] = [r for r in json_lines(listed.stdout) if r["id"] == parked_id]
    assert (row["consumer"], row["reason"], row["deliveries"]) == (CONSUMER, "handler_failed", 5)

    shown = await cli(database_url, embedded_nats, "show", str(parked_id))
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["headers"]["ce-source"] == "/comuna/consultations" and detail["payload_base64"]

    replayed = await cli(database_url, embedded_nats, "replay", str(parked_id))
    assert replayed.returncode == 0, replayed.stderr
    assert json_lines(replayed.stdout) == [{"id": parked_id, "outcome": "applied"}]
    again = await cli(database_url, embedded_nats, "replay", str(parked_id))
    assert json_lines(again.stdout) == [{"id": parked_id, "outcome": "already_replayed"}]
    assert await allocations_of(db, consultation_id) == 1

    remaining = await cli(database_url, embedded_nats, "list")
    assert parked_id not in {r["id"] for r in json_lines(remaining.stdout)}
    everything = await cli(database_url, embedded_nats, "list", "--include-replayed")
    assert parked_id in {r["id"] for r in json_lines(everything.stdout)}


@in_loop
async def test_replay_all(database_url: str, db: Database, embedded_nats: EmbeddedNats) -> None:
    parked = [await park_certified(db, seq) for seq in (10, 11)]
    replayed = await cli(database_url, embedded_nats, "replay", "--all")
    assert replayed.returncode == 0, replayed.stderr
    outcomes = {r["id"]: r["outcome"] for r in json_lines(replayed.stdout)}
    assert {outcomes[parked_id] for parked_id, _ in parked} == {"applied"}
    assert [await allocations_of(db, consultation_id) for _, consultation_id in parked] == [1, 1]


def run_in_process(
    database_url: str, nats: EmbeddedNats, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, str, str]:
    """The same entry point without a process start (for the many small cases)."""
    monkeypatch.setenv("COMUNA_FUNDING_DATABASE_URL", database_url)
    monkeypatch.setenv("COMUNA_FUNDING_NATS_URL", nats.url)
    with pytest.raises(SystemExit) as exited:
        run_cli(SPEC, MIGRATIONS, ["parked", *args])
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["show", "abc"], "invalid parked message id 'abc'"),
        (["show", "0"], "invalid parked message id '0'"),
        (["show", "9223372036854775808"], "invalid parked message id"),
        (["show", "\u0663"], "invalid parked message id"),
        (["show", "987654321"], "no parked message 987654321"),
        (["replay", "987654321"], "no parked message 987654321"),
        (["replay"], "replay takes either an id or --all"),
        (["replay", "1", "--all"], "replay takes either an id or --all"),
        ([], "parked needs a command"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    database_url: str,
    embedded_nats: EmbeddedNats,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    reason: str,
) -> None:
    status, out, err = run_in_process(database_url, embedded_nats, args, monkeypatch, capsys)
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("comuna-funding: ") and reason in lines[0], err


@pytest.mark.parametrize("args", [["--help"], ["list", "--help"], ["show", "--help"], ["replay", "--help"]])
def test_help_everywhere(
    database_url: str,
    embedded_nats: EmbeddedNats,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    status, out, _ = run_in_process(database_url, embedded_nats, args, monkeypatch, capsys)
    assert status == 0 and "usage: comuna-funding parked" in out
