"""Small REST helpers for the consultations integration tests."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from comuna_platform.auth.roles import Role
from comuna_platform.clock import ManualClock
from tests.support.identity import Identity, person, subject_of
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

_years = itertools.count(2001)

# Communes of the test country (tests.support.identity.TERRITORIES). C3 is a communal circuit.
COMMUNES = ("VE.01.01.C1", "VE.01.01.C2", "VE.01.02.C3")
# Granted by the stack (conftest) before any test runs.
OPERATOR = subject_of(Role.OPERATOR, "VE")
REGISTRAR = subject_of(Role.REGISTRAR, "VE")

ADULT = "1980-05-17"
CHILD = date(date.today().year - 10, 1, 1).isoformat()


@dataclass
class Stack:
    identity: RunningService
    consultations: RunningService
    commune_ids: dict[str, uuid.UUID]
    national_ids: itertools.count[int]
    authority: Identity
    # The consultations service's clock (`Runtime.clock`): it moves only when a test moves it.
    clock: ManualClock

    def new_voter_id(self) -> str:
        return f"V{next(self.national_ids)}"


async def register_residents(stack: Stack, issuer: TestIssuer, council_code: str, birth_date: str, n: int) -> list[str]:
    """Register `n` new residents of a council; returns their national id numbers."""
    national_ids = [stack.new_voter_id() for _ in range(n)]
    body = {
        "residents": [
            {"national_id": nid, "birth_date": birth_date, "council_code": council_code} for nid in national_ids
        ]
    }
    response = await stack.identity.client.post("/v1/residents:batch", json=body, headers=person(issuer, REGISTRAR))
    assert response.status_code == 201, response.text
    return national_ids


# Voting a month ahead: the roll's cut-off (today) must not be after the voting day, and the
# test's territories exist from today on. The stack's clock starts at the real time, so a new
# consultation is in its assemblies; `start_voting` / `close_voting` amend the dates and move
# the clock a few seconds.
_VOTING_DAY = date.today() + timedelta(days=30)
SCHEDULE = {
    "assemblies_open_at": f"{date.today() - timedelta(days=1)}T08:00:00-04:00",
    "candidates_close_at": f"{_VOTING_DAY - timedelta(days=3)}T18:00:00-04:00",
    "roll_cutoff_at": f"{_VOTING_DAY - timedelta(days=2)}T00:00:00-04:00",
    "voting_opens_at": f"{_VOTING_DAY}T06:00:00-04:00",
    "voting_closes_at": f"{_VOTING_DAY}T18:00:00-04:00",
    "certification_opens_at": f"{_VOTING_DAY}T20:00:00-04:00",
}
# The fields a candidate needs besides title and priority (a small water project).
CANDIDATE_COST = {"category": "water", "estimated_cost": 250_000}


def next_code() -> str:
    """A consultation code no other test in this session uses."""
    return f"{next(_years)}-Q1"


def spokesperson_subject(commune: str) -> str:
    return subject_of(Role.SPOKESPERSON, commune)


def operator(issuer: TestIssuer) -> dict[str, str]:
    """The national operator (an assignment at the country, granted by the stack)."""
    return person(issuer, OPERATOR)


def spokesperson(issuer: TestIssuer, commune: str) -> dict[str, str]:
    """The spokesperson of one of COMMUNES (granted by the stack)."""
    return person(issuer, spokesperson_subject(commune))


def table_code(commune: str) -> str:
    """The code of the electronic table `start_voting` opens for each commune."""
    return f"T1-{commune}"


async def officer(stack: Stack, consultation_id: str, commune: str, table: str | None = None) -> dict[str, str]:
    """A table officer of `table` (default: the commune's electronic table) in `commune` for
    this consultation (granted now)."""
    return await stack.authority.headers(
        Role.TABLE_OFFICER, commune, consultation_id=consultation_id, table_code=table or table_code(commune)
    )


async def open_tables(stack: Stack, consultation_id: str, kind: str = "electronic", suffix: str = "T1") -> None:
    """One voting centre serving every commune and one table of `kind` per commune, written
    directly (the tables API is another slice's; the ballot path only reads `voting_tables`)."""
    cid = uuid.UUID(consultation_id)
    async with stack.consultations.runtime.db.transaction() as session:
        centre = uuid.uuid4()
        await session.execute(
            text("INSERT INTO voting_centres (id, consultation_id, code, name) VALUES (:id, :c, :code, 'Escuela')"),
            {"id": centre, "c": cid, "code": f"CENTRE-{suffix}"},
        )
        for commune in COMMUNES:
            commune_id = stack.commune_ids[commune]
            await session.execute(
                text("INSERT INTO voting_centre_communes VALUES (:centre, :commune, :c)"),
                {"centre": centre, "commune": commune_id, "c": cid},
            )
            await session.execute(
                text(
                    "INSERT INTO voting_tables (id, consultation_id, centre_id, commune_id, code, kind)"
                    " VALUES (:id, :c, :centre, :commune, :code, :kind)"
                ),
                {
                    "id": uuid.uuid4(),
                    "c": cid,
                    "centre": centre,
                    "commune": commune_id,
                    "code": table_code(commune).replace("T1", suffix),
                    "kind": kind,
                },
            )


@dataclass
class Consultation:
    id: str
    code: str
    # commune code -> candidate ids in assembly priority order
    candidates: dict[str, list[str]] = field(default_factory=dict)


async def open_consultation(stack: Stack, issuer: TestIssuer, **overrides: Any) -> Consultation:
    """A consultation in its assemblies (overrides: any field of the body, e.g. a date or rule)."""
    code = next_code()
    body = {"code": code, "title": f"Consulta {code}", **SCHEDULE, **overrides}
    response = await stack.consultations.client.post("/v1/consultations", json=body, headers=operator(issuer))
    assert response.status_code == 201, response.text
    return Consultation(response.json()["id"], code)


async def add_candidate(
    stack: Stack,
    issuer: TestIssuer,
    consultation: Consultation,
    commune: str,
    priority: int,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """fields: override the body (category, estimated_cost, currency, ...)."""
    body = {
        "title": f"Proyecto {commune} #{priority}",
        "description": "Agua potable",
        "assembly_priority": priority,
        **CANDIDATE_COST,
        **fields,
    }
    response = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[commune]}/candidates",
        json=body,
        headers=headers or spokesperson(issuer, commune),
    )
    if response.status_code == 201:
        consultation.candidates.setdefault(commune, []).append(response.json()["id"])
    return response


async def transition(stack: Stack, issuer: TestIssuer, consultation_id: str, step: str) -> httpx.Response:
    return await stack.consultations.client.post(
        f"/v1/consultations/{consultation_id}:{step}", headers=operator(issuer)
    )


async def voting_consultation(
    stack: Stack, issuer: TestIssuer, per_commune: dict[str, int] | None = None
) -> Consultation:
    """A consultation in `voting`, with candidates (default: C1 three, C2 two, C3 one)."""
    consultation = await open_consultation(stack, issuer)
    for commune, n in (per_commune or {"VE.01.01.C1": 3, "VE.01.01.C2": 2, "VE.01.02.C3": 1}).items():
        for priority in range(1, n + 1):
            response = await add_candidate(stack, issuer, consultation, commune, priority)
            assert response.status_code == 201, response.text
    await start_voting(stack, issuer, consultation)
    return consultation


async def freeze_roll(stack: Stack, issuer: TestIssuer, consultation: Consultation) -> dict[str, Any]:
    """Freeze the roll (cut-off today) and wait until consultations has loaded and verified it."""
    client = stack.consultations.client
    response = await client.post(f"/v1/consultations/{consultation.id}/roll:freeze", json={}, headers=operator(issuer))
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 60
    while True:
        state = (await client.get(f"/v1/consultations/{consultation.id}/roll")).json()
        if state["status"] in ("verified", "refused"):
            assert state["status"] == "verified", state
            return dict(state)
        assert time.monotonic() < deadline, f"the roll was not loaded within 60 s: {state}"
        await asyncio.sleep(0.05)


async def amend(
    stack: Stack, issuer: TestIssuer, consultation_id: str, reason: str = "test", **dates: datetime
) -> httpx.Response:
    body: dict[str, Any] = {"reason": reason, **{name: when.isoformat() for name, when in dates.items()}}
    return await stack.consultations.client.post(
        f"/v1/consultations/{consultation_id}:amend-schedule", json=body, headers=operator(issuer)
    )


async def open_voting(stack: Stack, issuer: TestIssuer, consultation: Consultation) -> None:
    """Bring voting day forward to a second from now (an amendment), then move the clock into it."""
    now = stack.clock.now()
    response = await amend(
        stack,
        issuer,
        consultation.id,
        "voting brought forward by the test",
        candidates_close_at=now + timedelta(seconds=1),
        roll_cutoff_at=now + timedelta(seconds=1),
        voting_opens_at=now + timedelta(seconds=2),
    )
    assert response.status_code == 200, response.text
    stack.clock.advance(timedelta(seconds=3))


async def start_voting(stack: Stack, issuer: TestIssuer, consultation: Consultation) -> None:
    """The roll frozen (with everyone registered so far), loaded and verified; then voting."""
    await freeze_roll(stack, issuer, consultation)
    await open_voting(stack, issuer, consultation)
    await open_tables(stack, consultation.id)


async def close_voting(stack: Stack, issuer: TestIssuer, consultation: Consultation) -> None:
    """Close voting a second from now and open certification with it, then move the clock past both."""
    now = stack.clock.now()
    response = await amend(
        stack,
        issuer,
        consultation.id,
        "voting closed early by the test",
        voting_closes_at=now + timedelta(seconds=1),
        certification_opens_at=now + timedelta(seconds=1),
    )
    assert response.status_code == 200, response.text
    stack.clock.advance(timedelta(seconds=2))


def voting_clock(stack: Stack) -> ManualClock:
    """The consultations service's clock (the stack's ManualClock): after `start_voting` it is
    inside the voting window."""
    return stack.clock


async def vote(
    stack: Stack,
    issuer: TestIssuer,
    consultation: Consultation,
    commune: str,
    candidate_id: str | None,
    national_id: str,
    *,
    headers: dict[str, str] | None = None,
    commune_id: str | None = None,
    table: str | None = None,
) -> httpx.Response:
    """A ballot recorded at the commune's electronic table (or `table`) by its officer."""
    body: dict[str, Any] = {
        "commune_id": commune_id or str(stack.commune_ids[commune]),
        "candidate_id": candidate_id,
        "national_id": national_id,
        "table_code": table or table_code(commune),
        "channel": "table",
    }
    voting_clock(stack)
    return await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/ballots",
        json=body,
        headers=headers or await officer(stack, consultation.id, commune),
    )


async def vote_online(
    stack: Stack, consultation: Consultation, commune: str, candidate_id: str | None, headers: dict[str, str]
) -> httpx.Response:
    """A ballot cast online by whoever `headers` sign in (a linked resident may)."""
    body = {"commune_id": str(stack.commune_ids[commune]), "candidate_id": candidate_id, "channel": "online"}
    voting_clock(stack)
    return await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/ballots", json=body, headers=headers
    )


async def link_resident(stack: Stack, issuer: TestIssuer, national_id: str) -> str:
    """Link a new Keycloak subject to the resident (as the national registrar); returns the subject."""
    subject = str(uuid.uuid4())
    response = await stack.identity.client.post(
        "/v1/residents:link", json={"national_id": national_id, "subject": subject}, headers=person(issuer, REGISTRAR)
    )
    assert response.status_code == 201, response.text
    return subject


async def rows(stack: Stack, table: str, consultation_id: str) -> int:
    async with stack.consultations.runtime.db.transaction() as session:
        result = await session.execute(
            text(f"SELECT count(*) FROM {table} WHERE consultation_id = :id"), {"id": uuid.UUID(consultation_id)}
        )
        return int(result.scalar_one())


async def record_entries(stack: Stack, consultation: Consultation | str) -> list[list[str]]:
    """The consultation's public record entries (its log under the default origin), as lines,
    in log order."""
    from comuna_consultations.domain.record import DEFAULT_RECORD_ORIGIN
    from comuna_consultations.storage.record import log_origin

    consultation_id = consultation if isinstance(consultation, str) else consultation.id
    origin = log_origin(DEFAULT_RECORD_ORIGIN, uuid.UUID(consultation_id))
    async with stack.consultations.runtime.db.transaction() as session:
        found = await session.execute(
            text("SELECT data FROM tlog_entries WHERE origin = :o ORDER BY idx"), {"o": origin}
        )
        return [bytes(data).decode().splitlines() for data in found.scalars()]
