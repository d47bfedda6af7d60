"""The world of the authorization matrix: the four services in-process on the session's
PostgreSQL, NATS and Keycloak, each with its REST app and its gRPC API on a real port, and
objects in two places, driven through the real APIs and events:

- INSIDE: the commune `VE.01.01.C1` (state Lara, municipality Iribarren), where every test
  person holds their one assignment (each at the level their role is held at);
- OUTSIDE: the commune `VE.02.01.C9`, in another state, where none of them holds anything.

Consultations: `certified` (ballots in both communes, certified, so funding allocated money
and projects exist in both), `voting` (ballots can be cast), `assembly` (candidates can be
recorded) and `moving` (the operator's lifecycle transitions). People hold exactly one
assignment each (`People.headers(role)`); the builder's staff (national operator, national
registrar) only prepare objects and are never the caller of a matrix case.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.domain import access
from comuna_platform.auth.roles import NATIONAL_ROLES, Role
from comuna_platform.clock import ManualClock
from tests.support.grpc_server import grpc_server
from tests.support.identity import seed_territories, subject_of
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

SERVICES = ("identity", "consultations", "funding", "projects")
INSIDE = "VE.01.01.C1"
OUTSIDE = "VE.02.01.C9"
COUNCIL = {INSIDE: f"{INSIDE}.CC1", OUTSIDE: f"{OUTSIDE}.CC1"}
TERRITORIES = [
    ("VE", "Venezuela", "country", None),
    ("VE.01", "Lara", "state", "VE"),
    ("VE.01.01", "Iribarren", "municipality", "VE.01"),
    (INSIDE, "Comuna Uno", "commune", "VE.01.01"),
    (COUNCIL[INSIDE], "Consejo Uno", "communal_council", INSIDE),
    ("VE.02", "Falcón", "state", "VE"),
    ("VE.02.01", "Miranda", "municipality", "VE.02"),
    (OUTSIDE, "Comuna Nueve", "commune", "VE.02.01"),
    (COUNCIL[OUTSIDE], "Consejo Nueve", "communal_council", OUTSIDE),
]
# Where each role's holder acts: the territory of INSIDE at the level the role is held at.
HOME: dict[Role, str] = {
    Role.OPERATOR: "VE",
    Role.AUDITOR: "VE",
    Role.REGIONAL_OFFICIAL: "VE.01",
    Role.MUNICIPAL_OFFICIAL: "VE.01.01",
    Role.REGISTRAR: "VE.01.01",
    Role.SPOKESPERSON: INSIDE,
    Role.OVERSEER: INSIDE,
    Role.TABLE_OFFICER: INSIDE,
    Role.RESIDENT: COUNCIL[INSIDE],
}
TABLE = "T-C1"
# The voting tables of `voting` (electronic), one per commune: TABLE's officer acts at the first.
TABLES = {INSIDE: TABLE, OUTSIDE: "T-C9"}
BIRTH_DATE = "1980-05-17"
DEADLINE_SECONDS = 90.0
# The builder's staff: never a matrix caller (their subjects differ from every person's).
BUILDER_OPERATOR = str(uuid.uuid5(uuid.NAMESPACE_URL, "comuna-matrix:builder-operator"))
BUILDER_REGISTRAR = str(uuid.uuid5(uuid.NAMESPACE_URL, "comuna-matrix:builder-registrar"))


def has_outside(role: Role) -> bool:
    """National roles are held at the country root: no territory lies outside them."""
    return role not in NATIONAL_ROLES


@dataclass
class Consultation:
    id: str
    # commune code -> consultation commune id, and -> its candidate ids
    communes: dict[str, str] = field(default_factory=dict)
    candidates: dict[str, list[str]] = field(default_factory=dict)


# Voters on the roll per commune: the builder's ballots and every ballot case of the matrix.
VOTERS_PER_COMMUNE = 40


@dataclass
class World:
    services: dict[str, RunningService]
    grpc_targets: dict[str, str]
    issuer: TestIssuer
    consultations: dict[str, Consultation]
    # commune code -> (allocation id, account id), (project id, milestone ids in order)
    allocations: dict[str, tuple[str, str]]
    projects: dict[str, tuple[str, list[str]]]
    # commune code -> id of a spokesperson's assignment there (for reading and revoking)
    assignments: dict[str, str]
    receipt: str
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _people: dict[Role, str] = field(default_factory=dict)
    # Residents registered before the consultations' rolls were frozen, per commune: ballots
    # need a voter on the roll, and each votes once.
    _voters: dict[str, list[str]] = field(default_factory=dict)
    _people_elsewhere: str = ""
    # The consultations service's clock (`Runtime.clock`): the builder moves it through the phases.
    clock: ManualClock = field(default_factory=lambda: ManualClock(datetime.now(UTC)))

    # -- people --------------------------------------------------------------------------------
    def subject(self, role: Role) -> str:
        return self._people[role]

    def other_table_officer(self) -> dict[str, str]:
        """The officer of a table at INSIDE of another consultation (`certified`): the right
        commune, the wrong consultation."""
        return self.issuer.headers(subject=self._people_elsewhere)

    def headers(self, role: Role) -> dict[str, str]:
        """The token of the person who holds `role` at `HOME[role]`, and nothing else."""
        return self.issuer.headers(subject=self._people[role])

    def builder(self, registrar: bool = False) -> dict[str, str]:
        return self.issuer.headers(subject=BUILDER_REGISTRAR if registrar else BUILDER_OPERATOR)

    def fresh(self) -> int:
        return next(self._counter)

    def national_id(self) -> str:
        # Each world has its own identity database: a counter cannot collide.
        return str(10_000_000 + self.fresh())

    # -- objects made on demand (before the request of a case) -------------------------------
    async def resident(self, commune: str) -> str:
        """A newly registered resident of `commune`'s council; returns its national id."""
        national_id = self.national_id()
        response = await self.services["identity"].client.post(
            "/v1/residents",
            json={"national_id": national_id, "birth_date": BIRTH_DATE, "council_code": COUNCIL[commune]},
            headers=self.builder(registrar=True),
        )
        assert response.status_code == 201, response.text
        return national_id

    async def voter(self, commune: str) -> str:
        """The national id of a resident of `commune` on the world's frozen rolls, not used before."""
        pool = self._voters.get(commune)
        assert pool, f"no unused voter of {commune} left on the roll: raise VOTERS_PER_COMMUNE"
        return pool.pop()

    async def enrolment_code(self, commune: str) -> tuple[str, str]:
        national_id = await self.resident(commune)
        response = await self.services["identity"].client.post(
            "/v1/residents:enrolment-code", json={"national_id": national_id}, headers=self.builder(registrar=True)
        )
        assert response.status_code == 201, response.text
        return national_id, str(response.json()["code"])

    async def assignment(self, commune: str) -> str:
        """A new spokesperson's assignment at `commune` (granted by the builder)."""
        response = await self.services["identity"].client.post(
            "/v1/role-assignments",
            json={"subject": str(uuid.uuid4()), "role": "spokesperson", "territory_code": commune},
            headers=self.builder(),
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    # -- what a request may have written -------------------------------------------------------
    async def settle(self) -> None:
        """Wait until no event is on its way: every outbox relayed, every consumer caught up,
        twice in a row (a consumer commits its effects, new events included, before it acks).
        An earlier case's events (a verified milestone funds a tranche) then cannot land in the
        count of a later one."""
        calm = 0

        async def quiet() -> bool:
            nonlocal calm
            calm = calm + 1 if await self._quiet() else 0
            return calm >= 2

        await _poll("every event relayed and consumed", quiet)

    async def _quiet(self) -> bool:
        for service in self.services.values():
            async with service.runtime.db.transaction() as session:
                unpublished = await session.execute(
                    text("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
                )
                if unpublished.scalar_one():
                    return False
            for consumer in service.runtime.consumers:
                info = await service.runtime.js.consumer_info(consumer.stream, consumer.name)
                if info.num_pending or info.num_ack_pending:
                    return False
        return True

    async def fingerprint(self, service: str) -> dict[str, int]:
        """Rows per table of the service's database: an outside request must change none."""
        async with self.services[service].runtime.db.transaction() as session:
            tables = (
                await session.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
                )
            ).scalars()
            counts: dict[str, int] = {}
            for table in list(tables):
                counts[table] = int((await session.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar_one())
            return counts


async def _poll(what: str, probe: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _freeze_roll(consultations: RunningService, consultation_id: str, headers: dict[str, str]) -> None:
    """Freeze the roll (cut-off today) and wait until consultations has loaded and verified it."""
    base = f"/v1/consultations/{consultation_id}"
    response = await consultations.client.post(f"{base}/roll:freeze", json={}, headers=headers)
    assert response.status_code == 202, f"roll:freeze: {response.status_code} {response.text}"

    async def verified() -> bool:
        state = (await consultations.client.get(f"{base}/roll")).json()
        assert state["status"] != "refused", state
        return bool(state["status"] == "verified")

    await _poll("the roll loaded and verified", verified)


async def _call(service: RunningService, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
    response = await service.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code in (200, 201), f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


@asynccontextmanager
async def running_world(pg: EmbeddedPostgres, nats: EmbeddedNats, issuer: TestIssuer) -> AsyncIterator[World]:
    suffix = uuid.uuid4().hex[:10]
    async with AsyncExitStack() as stack:
        services: dict[str, RunningService] = {}
        targets: dict[str, str] = {}
        # Beside the session's PostgreSQL, in the session's scratch directory.
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="matrix-", dir=pg.data_dir.parent)))
        for name in SERVICES:
            package = importlib.import_module(f"comuna_{name}")
            spec = importlib.import_module(f"comuna_{name}.service").SPEC
            settings_cls = importlib.import_module(f"comuna_{name}.settings").Settings
            url = fresh_database(pg, f"matrix_{name}_{suffix}", Path(str(package.__file__)).parent / "migrations")
            extra: dict[str, Any] = (
                # The builder registers and looks up residents for every case: far beyond a person's
                # rate of lookups by document (tests/identity/test_rate_limits.py tests the limit).
                {
                    "census_hash_key": "matrix-census-key-0123456789abcdef",
                    "roll_secret": "r" * 32,
                    "rate_limit_document_lookups_burst": 10_000,
                }
                if name == "identity"
                else {}
            )
            if name != "identity":
                extra["identity_grpc_target"] = targets["identity"]
            if name == "projects":
                # Expenditures are checked against funding's ledger; evidence files go to scratch.
                extra["funding_grpc_target"] = targets["funding"]
                extra["evidence_dir"] = scratch / "evidence"
            if name == "consultations":
                # Offline tables' snapshots are signed (any 32-byte seed will do here).
                extra["snapshot_signing_key"] = "bWF0cml4LXNuYXBzaG90LXNpZ25pbmcta2V5LTMyYiE="
                extra["voter_ref_secret"] = "matrix-voter-ref-secret-" + "m" * 32
            # Each service asks identity with its own client-credentials token.
            extra["service_client_secret"] = issuer.client_secrets[f"svc-{name}"]
            services[name] = await stack.enter_async_context(
                running_service(spec, settings_cls, database_url=url, nats_url=nats.url, issuer=issuer, **extra)
            )
            targets[name] = await stack.enter_async_context(grpc_server(spec, services[name]))
            if name == "identity":
                await seed_territories(services[name], TERRITORIES)
                await _grant(services[name], BUILDER_OPERATOR, Role.OPERATOR, "VE")
                await _grant(services[name], BUILDER_REGISTRAR, Role.REGISTRAR, "VE")
        world = World(services, targets, issuer, {}, {}, {}, {}, receipt="")
        services["consultations"].runtime.clock = world.clock
        await _build(world)
        yield world


async def _grant(identity: RunningService, subject: str, role: Role, code: str, **terms: Any) -> None:
    async with identity.runtime.db.unit_of_work() as uow:
        await access.ensure_assignment(uow, subject=subject, role=role, territory_code=code, **terms)


async def _open(world: World, code: str, communes_with_candidates: int) -> Consultation:
    consultations = world.services["consultations"]
    now = world.clock.now()
    # In its assemblies on the consultations service's clock; `_build` amends the dates and
    # moves the clock.
    body = {
        "code": code,
        "title": f"Matrix {code}",
        "assemblies_open_at": (now - timedelta(days=1)).isoformat(),
        "candidates_close_at": (now + timedelta(days=20)).isoformat(),
        "roll_cutoff_at": (now + timedelta(days=25)).isoformat(),
        "voting_opens_at": (now + timedelta(days=30)).isoformat(),
        "voting_closes_at": (now + timedelta(days=31)).isoformat(),
        "certification_opens_at": (now + timedelta(days=32)).isoformat(),
    }
    opened = await _call(consultations, "POST", "/v1/consultations", world.builder(), json=body)
    found = Consultation(id=str(opened["id"]))
    page = await _call(consultations, "GET", f"/v1/consultations/{found.id}/communes", {})
    found.communes = {c["code"]: str(c["commune_id"]) for c in page["items"]}
    assert set(found.communes) == {INSIDE, OUTSIDE}, found.communes
    for commune, commune_id in list(found.communes.items())[:communes_with_candidates]:
        found.candidates[commune] = [
            str(
                (
                    await _call(
                        consultations,
                        "POST",
                        f"/v1/consultations/{found.id}/communes/{commune_id}/candidates",
                        world.builder(),
                        json={
                            "title": f"Proyecto {priority}",
                            "description": "Matriz",
                            "assembly_priority": priority,
                            "category": "water",
                            "estimated_cost": 100_000,
                        },
                    )
                )["id"]
            )
            for priority in (1, 2)
        ]
    return found


async def _amend(world: World, consultation_id: str, **seconds_from_now: int) -> None:
    now = world.clock.now()
    body: dict[str, Any] = {
        "reason": "matrix",
        **{name: (now + timedelta(seconds=s)).isoformat() for name, s in seconds_from_now.items()},
    }
    path = f"/v1/consultations/{consultation_id}:amend-schedule"
    await _call(world.services["consultations"], "POST", path, world.builder(), json=body)


async def _build(world: World) -> None:
    identity, consultations = world.services["identity"], world.services["consultations"]
    base = "/v1/consultations"
    certified = await _open(world, "2091-Q1", 2)
    voting = await _open(world, "2091-Q2", 2)
    world.consultations = {
        "certified": certified,
        "voting": voting,
        "assembly": await _open(world, "2091-Q3", 0),
        "moving": await _open(world, "2091-Q4", 0),
    }
    # The voting tables of `voting`, laid out before its voting starts.
    layout = [
        {
            "centre_code": "CV-M",
            "centre_name": "Escuela Matriz",
            "address": "",
            "commune_code": commune,
            "table_code": code,
            "table_kind": "electronic",
        }
        for commune, code in TABLES.items()
    ]
    await _call(consultations, "POST", f"{base}/{voting.id}/voting-centres:import", world.builder(), json=layout)
    # The builder's own tables in `certified`, one per commune, where it casts that consultation's ballots.
    builder_tables = {INSIDE: "T-B1", OUTSIDE: "T-B2"}
    builder_layout = [row | {"table_code": builder_tables[row["commune_code"]]} for row in layout]
    await _call(
        consultations, "POST", f"{base}/{certified.id}/voting-centres:import", world.builder(), json=builder_layout
    )
    # Table officers of the builder's own (one per commune of `certified`), then the matrix's people.
    officer = str(uuid.uuid5(uuid.NAMESPACE_URL, f"comuna-matrix:builder-officer:{certified.id}"))
    for commune in (INSIDE, OUTSIDE):
        await _grant(
            identity,
            officer,
            Role.TABLE_OFFICER,
            commune,
            consultation_id=uuid.UUID(certified.id),
            table_code=builder_tables[commune],
        )
    for role, code in HOME.items():
        terms: dict[str, Any] = {}
        if role is Role.TABLE_OFFICER:
            terms = {"consultation_id": uuid.UUID(voting.id), "table_code": TABLE}
        subject = subject_of(role, code, terms.get("consultation_id"), terms.get("table_code"))
        await _grant(identity, subject, role, code, **terms)
        world._people[role] = subject
    elsewhere = uuid.UUID(certified.id)
    world._people_elsewhere = subject_of(Role.TABLE_OFFICER, INSIDE, elsewhere, TABLE)
    await _grant(
        identity, world._people_elsewhere, Role.TABLE_OFFICER, INSIDE, consultation_id=elsewhere, table_code=TABLE
    )

    # Voting needs a verified roll: everyone who will vote is registered before it freezes.
    for commune in (INSIDE, OUTSIDE):
        world._voters[commune] = [await world.resident(commune) for _ in range(VOTERS_PER_COMMUNE)]
    for consultation in (certified, voting):
        await _freeze_roll(consultations, consultation.id, world.builder())
    await _amend(world, voting.id, candidates_close_at=1, roll_cutoff_at=1, voting_opens_at=2)
    await _amend(world, certified.id, candidates_close_at=1, roll_cutoff_at=1, voting_opens_at=2)
    world.clock.advance(timedelta(seconds=3))
    officer_headers = world.issuer.headers(subject=officer)
    for commune in (INSIDE, OUTSIDE):
        for choice in (0, 0, 1):
            ballot = await _call(
                consultations,
                "POST",
                f"{base}/{certified.id}/ballots",
                officer_headers,
                json={
                    "commune_id": certified.communes[commune],
                    "candidate_id": certified.candidates[commune][choice],
                    "national_id": await world.voter(commune),
                    "channel": "table",
                    "table_code": builder_tables[commune],
                },
            )
            world.receipt = str(ballot["receipt"])
    # Only `certified` closes; `voting` stays open for the matrix's ballots (closing in a year).
    await _amend(world, voting.id, voting_closes_at=365 * 86400, certification_opens_at=366 * 86400)
    await _amend(world, certified.id, voting_closes_at=1, certification_opens_at=1)
    world.clock.advance(timedelta(seconds=2))
    await _call(consultations, "POST", f"{base}/{certified.id}:certify", world.builder())

    async def allocations() -> list[Any] | None:
        page = await _call(
            world.services["funding"], "GET", "/v1/allocations", {}, params={"consultation_id": certified.id}
        )
        return page["items"] if len(page["items"]) == 2 else None

    async def projects() -> list[Any] | None:
        page = await _call(
            world.services["projects"], "GET", "/v1/projects", {}, params={"consultation_id": certified.id}
        )
        return page["items"] if len(page["items"]) == 2 else None

    for allocation in await _poll("an allocation per commune", allocations):
        world.allocations[allocation["commune_code"]] = (str(allocation["id"]), str(allocation["account_id"]))
    for project in await _poll("a project per allocation", projects):
        detail = await _call(world.services["projects"], "GET", f"/v1/projects/{project['id']}", {})
        milestones = [str(m["id"]) for m in sorted(detail["milestones"], key=lambda m: m["sequence"])]
        world.projects[detail["commune_code"]] = (str(project["id"]), milestones)
    for commune in (INSIDE, OUTSIDE):
        world.assignments[commune] = await world.assignment(commune)
    assert set(world.allocations) == set(world.projects) == {INSIDE, OUTSIDE}
    # The streams and durable consumers are the session's: events other modules left behind
    # are consumed now, not while an outside case counts what its request wrote.
    await world.settle()
