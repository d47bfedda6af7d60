"""Ballot throughput through the public REST API, next to a bare endpoint on the same stack.

Not a test: it reports figures. It seeds its own territory (communes with one council each and
enough residents for every ballot), opens a consultation with one electronic table per commune,
casts the ballots with many concurrent clients at the tables (each 201 after its group commit),
certifies, and checks that the certified counts equal the ballots accepted.

The online channel is not driven here: it needs one signed-in, linked Keycloak account per
ballot. `comuna-dev bench ballot-commit` measures the group commit of both channels' rows.
The tables are written straight into consultations' database (`_open_tables`) until the tables
API of issue 8 is on main.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from comuna_devstack.client import PlatformClient, items
from comuna_devstack.demo import close_voting, freeze_roll, grant_tables, open_consultation, open_voting
from comuna_devstack.seed import TABLE_OFFICERS

STATE = "VE.90"
MUNICIPALITY = "VE.90.01"
COMMUNES = 50
BATCH = 1000


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


async def _load(
    url: str, requests: list[dict[str, Any]] | int, *, method: str, headers: dict[str, str], concurrency: int
) -> dict[str, Any]:
    """Send the requests from `concurrency` workers; returns rate, latency percentiles, statuses.

    aiohttp rather than httpx: on two shared cores httpx's client overhead (~600 requests/s)
    would be measured instead of the server (aiohttp keeps up with wrk here).
    """
    bodies: list[Any] = list(requests) if isinstance(requests, list) else [None] * requests
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:

        async def worker() -> None:
            for body in queue:
                started = time.perf_counter()
                statuses[await _send(http, method, url, body)] += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(bodies),
        "seconds": round(elapsed, 2),
        "per_second": round(len(bodies) / elapsed),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "statuses": dict(sorted(statuses.items())),
    }


async def _send(http: aiohttp.ClientSession, method: str, url: str, body: dict[str, Any] | None) -> str:
    """Send once; after a dropped connection, send again as a real client would.

    A ballot whose first attempt was stored but whose answer was lost comes back 409
    `already_voted`: it is reported as "201 (confirmed on retry)", so accepted ballots are
    counted exactly.
    """
    for attempt in range(3):
        try:
            async with http.request(method, url, json=body) as response:
                payload = await response.read()
        except aiohttp.ClientConnectionError:
            continue
        if attempt and response.status == 409 and b'"already_voted"' in payload:
            return "201 (confirmed on retry)"
        return str(response.status)
    return "transport error"


def _table_code(commune_code: str) -> str:
    """The table code `demo.grant_tables` gives the officer for a commune."""
    return f"T-{commune_code.rsplit('.', 1)[-1]}"


async def _open_tables(admin_url: str, consultation_id: str, communes: list[dict[str, Any]]) -> None:
    """One centre serving every bench commune, one electronic table per commune."""
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0] + "/comuna_consultations"
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            centre = uuid.uuid4()
            cid = uuid.UUID(consultation_id)
            await conn.execute(
                "INSERT INTO voting_centres (id, consultation_id, code, name) VALUES ($1, $2, 'BENCH', 'Bench')",
                centre,
                cid,
            )
            for commune in communes:
                commune_id = uuid.UUID(commune["id"])
                await conn.execute("INSERT INTO voting_centre_communes VALUES ($1, $2, $3)", centre, commune_id, cid)
                await conn.execute(
                    "INSERT INTO voting_tables (id, consultation_id, centre_id, commune_id, code, kind)"
                    " VALUES ($1, $2, $3, $4, $5, 'electronic')",
                    uuid.uuid4(),
                    cid,
                    centre,
                    commune_id,
                    _table_code(commune["code"]),
                )
    finally:
        await conn.close()


def run_bench(
    urls: dict[str, str],
    token_url: str,
    passwords: dict[str, str],
    *,
    ballots: int,
    concurrency: int,
    admin_url: str,
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
    # Ballots are accepted only inside the voting window on the server clock, and the roll's
    # cut-off (today) may not be after the voting day: voting opens a minute from now, today.
    opens_at = datetime.now(UTC) + timedelta(minutes=1)
    consultation = open_consultation(client, "Benchmark", opens_at - timedelta(days=14))
    code = consultation["code"]
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
    asyncio.run(_open_tables(admin_url, consultation["id"], communes))
    # Ballots are matched against the roll consultations loaded: freeze it first (every
    # resident seeded above is on it).
    client.login("operator", passwords["operator"])
    freeze_roll(client, consultation["id"])
    client.login("operator", passwords["operator"])
    open_voting(client, consultation["id"])

    bodies = []
    for i in range(ballots):
        commune_code = f"{MUNICIPALITY}.B{i % COMMUNES:03d}"
        bodies.append(
            {
                "commune_id": bench_communes[commune_code],
                "candidate_id": candidates[commune_code][i % 3 if i % 7 else 0],
                "national_id": _national_id(i),
                "table_code": _table_code(commune_code),
                "channel": "table",
            }
        )
    client.login(officer, passwords[officer])
    officer_headers = client.auth(officer)
    time.sleep(max(0.0, (opens_at - datetime.now(UTC)).total_seconds() + 1))
    bare = asyncio.run(
        _load(
            f"{urls['consultations']}/healthz", min(ballots, 20_000), method="GET", headers={}, concurrency=concurrency
        )
    )
    cast = asyncio.run(
        _load(
            f"{urls['consultations']}{base}/ballots",
            bodies,
            method="POST",
            headers=officer_headers,
            concurrency=concurrency,
        )
    )

    # Figures first (stderr), so a failure after the load does not lose them.
    print(json.dumps({"bare_endpoint": bare, "ballot_endpoint": cast}), file=sys.stderr)
    # A long run outlives the operator's token: sign in again for the close and certification.
    client.login("operator", passwords["operator"])
    close_voting(client, consultation["id"])
    client.call("POST", "consultations", f"{base}:certify", as_user="operator")
    results = client.call("GET", "consultations", f"{base}/results")
    certified = sum(c["votes"] for commune in results["communes"] for c in commune["candidates"])
    accepted = cast["statuses"].get("201", 0) + cast["statuses"].get("201 (confirmed on retry)", 0)
    revocation = measure_revocation(client, urls, person=TABLE_OFFICERS[0], passwords=passwords)
    client.close()
    return {
        "consultation": code,
        "ballots": ballots,
        "concurrency": concurrency,
        "seed_seconds": round(seed_seconds, 1),
        "bare_endpoint": bare,
        "ballot_endpoint": cast,
        "accepted": accepted,
        "certified_votes": certified,
        "counts_match": certified == accepted,
        "revocation": revocation,
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
