"""Ballot throughput through the public REST API, next to a bare endpoint on the same stack
and a raw batched COPY into the same PostgreSQL (`comuna-dev bench ballots`, against `make run`).

Not a test: it reports figures. It seeds its own territory (communes with one council each and
enough residents for every ballot), opens a consultation with one electronic table per commune
(through the tables API), freezes the roll, opens voting, and then, in one run:

1. a bare endpoint (`/healthz`) of the consultations service, closed loop;
2. table ballots, closed loop at `concurrency` connections: ballots/s (each 201 sent after its
   group commit);
3. table ballots, open loop at `rate` ballots/s: latency p50/p99 (the issue's "p99 under
   100 ms at 1,000 ballots/s");
4. online ballots, closed loop: `online` residents, each with a Keycloak account of their own
   linked to their census record before the freeze (`benches.online_voters`), each casting
   one ballot with their own token;
5. a raw batched COPY of as many ballot rows into a scratch database of the same PostgreSQL;

then closes voting, certifies, and checks that the certified counts equal the 201s. Load comes
from vegeta (`benches.loadgen`), not from Python, so the client does not eat the server's CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from comuna_devstack.benches.loadgen import Request, attack
from comuna_devstack.benches.online_voters import OnlineVoters
from comuna_devstack.client import PlatformClient, items
from comuna_devstack.demo import close_voting, freeze_roll, grant_tables, open_consultation, open_voting, table_code
from comuna_devstack.residents import RealmAdmin
from comuna_devstack.seed import TABLE_OFFICERS

STATE = "VE.90"
MUNICIPALITY = "VE.90.01"
COMMUNES = 50
BATCH = 1000
COPY_BATCH = 500


def _national_id(i: int) -> str:
    return f"V{50_000_000 + i}"


def _seed(client: PlatformClient, ballots: int, registrar_password: str) -> list[dict[str, Any]]:
    # The country root exists (the dev seed put it in the register); the rest is the registrar's.
    for code, name, kind, parent in [
        (STATE, "Bench", "state", "VE"),
        (MUNICIPALITY, "Bench", "municipality", STATE),
    ]:
        client.call(
            "POST",
            "identity",
            "/v1/territories",
            as_user="registrar",
            expect=(201, 409),
            json={"code": code, "name": name, "kind": kind, "parent_code": parent},
        )
    for c in range(COMMUNES):
        commune = f"{MUNICIPALITY}.B{c:03d}"
        client.call(
            "POST",
            "identity",
            "/v1/territories",
            as_user="registrar",
            expect=(201, 409),
            json={"code": commune, "name": f"Comuna {c}", "kind": "commune", "parent_code": MUNICIPALITY},
        )
        client.call(
            "POST",
            "identity",
            "/v1/territories",
            as_user="registrar",
            expect=(201, 409),
            json={
                "code": f"{commune}.CC01",
                "name": f"Consejo {c}",
                "kind": "communal_council",
                "parent_code": commune,
            },
        )
    for start in range(0, ballots, BATCH):
        # A batch takes seconds on a busy machine: a fresh token for each (they live minutes).
        client.login("registrar", registrar_password)
        residents = [
            {
                "national_id": _national_id(i),
                "birth_date": "1980-06-15",
                "council_code": f"{MUNICIPALITY}.B{i % COMMUNES:03d}.CC01",
            }
            for i in range(start, min(start + BATCH, ballots))
        ]
        client.call(
            "POST",
            "identity",
            "/v1/residents:batch",
            as_user="registrar",
            expect=(201, 409),
            json={"residents": residents},
        )
    return items(client.call("GET", "identity", "/v1/territories", params={"parent_code": MUNICIPALITY, "limit": 1000}))


async def _record_lag(admin_url: str, client: PlatformClient, base: str, consultation_id: str) -> dict[str, Any]:
    """How long after the load the signed checkpoint covers every ballot entry (issue 9: the
    log integrates within a bounded lag): the log's sequenced size, read from consultations'
    database, against the size of the checkpoint served."""
    server = admin_url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{server}/comuna_consultations")
    try:
        sequenced = await conn.fetchval(
            "SELECT size FROM tlog_logs WHERE origin LIKE '%/consultations/' || $1", consultation_id
        )
    finally:
        await conn.close()
    started = time.monotonic()
    covered = 0
    while time.monotonic() - started < 120:
        response = client.http.get(f"{client.urls['consultations']}{base}/record/checkpoint")
        if response.status_code == 200:
            covered = int(response.text.split("\n")[1])
            if covered >= (sequenced or 0):
                break
        await asyncio.sleep(0.1)
    return {
        "entries": sequenced,
        "checkpoint_size": covered,
        "seconds_after_load": round(time.monotonic() - started, 2),
    }


async def _raw_copy(admin_url: str, rows: int) -> dict[str, Any]:
    """COPY `rows` ballot-shaped rows in transactions of COPY_BATCH into a scratch database."""
    server = admin_url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]
    admin = await asyncpg.connect(f"{server}/postgres")
    name = f"bench_raw_copy_{os.getpid()}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(f"{server}/{name}")
        try:
            await conn.execute(
                "CREATE TABLE ballots (id uuid PRIMARY KEY, consultation_id uuid NOT NULL, commune_id uuid NOT NULL,"
                " candidate_id uuid, channel text NOT NULL, table_id uuid)"
            )
            consultation, communes = uuid.uuid4(), [uuid.uuid4() for _ in range(COMMUNES)]
            records = [
                (uuid.uuid4(), consultation, communes[i % COMMUNES], uuid.uuid4(), "table", communes[i % COMMUNES])
                for i in range(rows)
            ]
            started = time.perf_counter()
            for first in range(0, rows, COPY_BATCH):
                async with conn.transaction():
                    await conn.copy_records_to_table("ballots", records=records[first : first + COPY_BATCH])
            elapsed = time.perf_counter() - started
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    return {"rows": rows, "batch": COPY_BATCH, "seconds": round(elapsed, 2), "per_second": round(rows / elapsed)}


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    return round(a["per_second"] / b["per_second"], 3) if a.get("per_second") and b.get("per_second") else None


def _accepted(*runs: dict[str, Any]) -> int:
    return sum(run["statuses"].get("201", 0) for run in runs)


def run_bench(
    urls: dict[str, str],
    token_url: str,
    passwords: dict[str, str],
    *,
    ballots: int,
    concurrency: int,
    rate: float,
    online: int,
    admin_url: str,
    realm_admin: RealmAdmin,
) -> dict[str, Any]:
    client = PlatformClient(urls, token_url=token_url, timeout=120.0)
    officer = TABLE_OFFICERS[-1]
    for user in ("operator", "registrar", officer):
        client.login(user, passwords[user])
    seed_started = time.perf_counter()
    communes = _seed(client, ballots, passwords["registrar"])
    seed_seconds = time.perf_counter() - seed_started

    for user in ("operator", officer):
        client.login(user, passwords[user])
    consultation = open_consultation(client, "Benchmark", datetime.now(UTC))
    base = f"/v1/consultations/{consultation['id']}"
    bench_communes = {c["code"]: c["id"] for c in communes}
    candidates: dict[str, list[str]] = {}
    for commune_code, commune_id in bench_communes.items():
        candidates[commune_code] = [
            client.call(
                "POST",
                "consultations",
                f"{base}/communes/{commune_id}/candidates",
                as_user="operator",
                expect=201,
                json={
                    "title": f"Proyecto {p}",
                    "description": "bench",
                    "assembly_priority": p,
                    "category": "water",
                    "estimated_cost": 100_000 * p,
                },
            )["id"]
            for p in (1, 2, 3)
        ]
    client.login("operator", passwords["operator"])
    grant_tables(client, consultation["id"], officer, communes)
    # The last `online` residents vote online: accounts and links before the freeze.
    tabled = ballots - online
    voters = OnlineVoters(client, realm_admin, [_national_id(i) for i in range(tabled, ballots)])
    voters.enrol()
    # Every resident seeded above is on the roll consultations loads and verifies.
    client.login("operator", passwords["operator"])
    freeze_roll(client, consultation["id"])
    client.login("operator", passwords["operator"])
    open_voting(client, consultation["id"])

    client.login(officer, passwords[officer])
    headers = {**client.auth(officer), "Content-Type": "application/json"}
    url = f"{urls['consultations']}{base}/ballots"
    ballot_requests = []
    for i in range(tabled):
        commune_code = f"{MUNICIPALITY}.B{i % COMMUNES:03d}"
        body = {
            "commune_id": bench_communes[commune_code],
            "candidate_id": candidates[commune_code][i % 3 if i % 7 else 0],
            "national_id": _national_id(i),
            "table_code": table_code(commune_code),
            "channel": "table",
        }
        ballot_requests.append(Request("POST", url, headers, json.dumps(body).encode()))
    # The open loop runs 10 s at `rate` (or on a fifth of the table ballots if fewer); the rest closed loop.
    open_n = min(int(rate * 10), tabled // 5)
    bare = attack(
        [Request("GET", f"{urls['consultations']}/healthz", {})] * min(ballots, 50_000),
        label="bare endpoint",
        workers=concurrency,
    )
    cast = attack(ballot_requests[open_n:], label="table ballots", workers=concurrency)
    open_loop = attack(ballot_requests[:open_n], label="table ballots", workers=concurrency, rate=rate)
    online_requests = []
    # Fresh tokens for the same sessions (nothing hashed): the first were minted minutes ago.
    for i, token in zip(range(tabled, ballots), voters.refresh(), strict=True):
        commune_code = f"{MUNICIPALITY}.B{i % COMMUNES:03d}"
        body = {
            "commune_id": bench_communes[commune_code],
            "candidate_id": candidates[commune_code][i % 3],
            "channel": "online",
        }
        online_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        online_requests.append(Request("POST", url, online_headers, json.dumps(body).encode()))
    online_cast = attack(online_requests, label="online ballots", workers=concurrency) if online_requests else None
    voters.close()
    record_lag = asyncio.run(_record_lag(admin_url, client, base, consultation["id"]))
    raw_copy = asyncio.run(_raw_copy(admin_url, len(ballot_requests) - open_n))
    figures = {
        "bare_endpoint": bare,
        "ballot_endpoint": cast,
        "ballot_endpoint_open_loop": {"offered_per_second": rate, **open_loop},
        "online_ballot_endpoint": online_cast,
        "online_voters": voters.figures,
        "raw_copy": raw_copy,
        "record_integration_lag": record_lag,
        "ballots_to_bare": _ratio(cast, bare),
        "ballots_to_raw_copy": _ratio(cast, raw_copy),
    }
    # Figures first (stderr), so a failure after the load does not lose them.
    print(json.dumps(figures), file=sys.stderr)
    # A long run outlives the operator's token: sign in again for the close and certification.
    client.login("operator", passwords["operator"])
    close_voting(client, consultation["id"])
    client.call("POST", "consultations", f"{base}:certify", as_user="operator")
    results = client.call("GET", "consultations", f"{base}/results")
    certified = sum(c["votes"] for commune in results["communes"] for c in commune["candidates"])
    accepted = _accepted(cast, open_loop, *([online_cast] if online_cast else []))
    revocation = measure_revocation(client, urls, person=TABLE_OFFICERS[0], passwords=passwords)
    client.close()
    return {
        "consultation": consultation["code"],
        "ballots": ballots,
        "online": online,
        "concurrency": concurrency,
        "seed_seconds": round(seed_seconds, 1),
        **figures,
        "accepted": accepted,
        "certified_votes": certified,
        "counts_match": certified == accepted,
        "revocation": revocation,
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def measure_revocation(
    client: PlatformClient, urls: dict[str, str], *, person: str, passwords: dict[str, str], rounds: int = 5
) -> dict[str, Any]:
    """How long a revocation takes to bite in another service: identity revokes an auditor
    assignment, and consultations (which cached the person's resolution a moment before) is
    polled until it refuses. Identity's `identity.role_assignment.revoked` event is what drops
    the cache; without it the answer would live `ACCESS_CACHE_SECONDS`."""
    client.login(person, passwords[person])
    subject = client.subject(person)
    probe = f"{urls['consultations']}/v1/parked-messages"
    delays = []
    for _ in range(rounds):
        granted = client.call(
            "POST",
            "identity",
            "/v1/role-assignments",
            as_user="operator",
            expect=201,
            json={"subject": subject, "role": "auditor", "territory_code": "VE"},
        )
        deadline = time.monotonic() + 30
        while client.http.get(probe, headers=client.auth(person)).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("a new auditor assignment was not honoured within 30 s")
            time.sleep(0.01)
        revoked_at = time.monotonic()
        client.call(
            "POST",
            "identity",
            f"/v1/role-assignments/{granted['id']}:revoke",
            as_user="operator",
            json={"reason": "bench"},
        )
        while client.http.get(probe, headers=client.auth(person)).status_code == 200:
            if time.monotonic() > revoked_at + 120:
                raise RuntimeError("a revocation was not honoured within 120 s")
            time.sleep(0.005)
        delays.append((time.monotonic() - revoked_at) * 1000)
    return {
        "rounds": rounds,
        "revoke_to_refusal_ms_median": round(statistics.median(delays), 1),
        "revoke_to_refusal_ms_max": round(max(delays), 1),
    }
