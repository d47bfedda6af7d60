"""One consultation cycle through the public REST APIs, in steps a scenario can interleave with
faults: open + candidates + start voting, ballots, close, certify, then the event-driven part
(allocations, projects), milestone verification and tranches.

Unlike `comuna_devstack.demo.run_demo` (one uninterrupted run over three communes), every step
here tolerates the outage a scenario causes: ballots refused with 503 are cast again, and a
certification interrupted by a crash is asked for again, as an operator would.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx

from comuna_devstack.client import PlatformClient, StepFailed, items
from comuna_devstack.demo import (
    certify,
    close_voting,
    freeze_roll,
    grant_tables,
    open_consultation,
    open_voting,
    table_code,
)
from comuna_devstack.demo_projects import png
from comuna_devstack.seed import TABLE_OFFICERS

COUNTRY, STATE, MUNICIPALITY = "VE", "VE.01", "VE.01.01"
CANDIDATES_PER_COMMUNE = 2
# The dev seed's table officer the operator assigns a table of each commune.
OFFICER = TABLE_OFFICERS[0]
# The dev seed's other table officer, whom the operator makes overseer of every commune here:
# milestones are reported by the operator and verified by someone else (four eyes). (The fault
# stack seeds national staff only: no commune's own overseer exists there.)
OVERSEER = TABLE_OFFICERS[1]
# How long an event-driven step may take after a fault: long enough for a redelivery after
# JetStream's ack wait (a crashed consumer's unacknowledged batch) and a reconnect.
EVENT_DEADLINE_SECONDS = 120.0
RETRY_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class Commune:
    id: str
    code: str
    voters: tuple[str, ...]


def seed_territory(client: PlatformClient, *, communes: int, voters_per_commune: int) -> list[Commune]:
    """One state, one municipality, `communes` communes of one council each, and their voters."""
    territories = [(COUNTRY, "Venezuela", "country", None), (STATE, "Lara", "state", COUNTRY)]
    territories.append((MUNICIPALITY, "Iribarren", "municipality", STATE))
    residents = []
    for n in range(1, communes + 1):
        code = f"{MUNICIPALITY}.C{n:04d}"
        territories.append((code, f"Comuna {n}", "commune", MUNICIPALITY))
        territories.append((f"{code}.CC01", f"Consejo Comunal de la Comuna {n}", "communal_council", code))
        for v in range(voters_per_commune):
            residents.append(
                {
                    "national_id": _national_id(n, v),
                    "birth_date": date(1980, 1, 1).isoformat(),
                    "council_code": f"{code}.CC01",
                }
            )
    for code, name, kind, parent in territories:
        body = {"code": code, "name": name, "kind": kind, "parent_code": parent}
        # The country root is an operator's to create (it is there already: the dev seed made it).
        registrar = "operator" if parent is None else "registrar"
        client.call("POST", "identity", "/v1/territories", as_user=registrar, expect=(201, 409), json=body)
    client.call(
        "POST", "identity", "/v1/residents:batch", as_user="registrar", json={"residents": residents}, expect=(201, 409)
    )
    for n in range(1, communes + 1):
        grant = {"subject": client.subject(OVERSEER), "role": "overseer", "territory_code": f"{MUNICIPALITY}.C{n:04d}"}
        client.call("POST", "identity", "/v1/role-assignments", as_user="operator", json=grant, expect=(201, 409))
    listed = items(
        client.call("GET", "identity", "/v1/territories", params={"parent_code": MUNICIPALITY, "limit": 500})
    )
    by_code = {t["code"]: t["id"] for t in listed}
    return [
        Commune(
            by_code[f"{MUNICIPALITY}.C{n:04d}"],
            f"{MUNICIPALITY}.C{n:04d}",
            tuple(_national_id(n, v) for v in range(voters_per_commune)),
        )
        for n in range(1, communes + 1)
    ]


def _national_id(commune: int, voter: int) -> str:
    return f"V{30_000_000 + commune * 100 + voter}"


@dataclass
class Cycle:
    client: PlatformClient
    communes: list[Commune]
    # Called when an event-driven step times out: what the services and JetStream said.
    diagnose: Callable[[], str] = lambda: ""
    consultation_id: str = ""
    candidates: dict[str, list[str]] = field(default_factory=dict)  # commune id -> candidate ids
    cast: Counter[str] = field(default_factory=Counter)  # candidate id -> accepted ballots
    # Answers other than 201 while voting, e.g. {503: 4} while identity was down.
    refusals: Counter[int] = field(default_factory=Counter)

    @property
    def base(self) -> str:
        return f"/v1/consultations/{self.consultation_id}"

    # -- before the vote -------------------------------------------------------------------------
    def open(self) -> None:
        consultation = open_consultation(self.client, "Consulta de prueba de fallas", datetime.now(UTC))
        self.consultation_id = consultation["id"]
        if consultation["commune_count"] != len(self.communes):
            raise StepFailed(
                f"consultation snapshot has {consultation['commune_count']} communes, seeded {len(self.communes)}"
            )
        for commune in self.communes:
            self.candidates[commune.id] = [
                self.client.call(
                    "POST",
                    "consultations",
                    f"{self.base}/communes/{commune.id}/candidates",
                    as_user="operator",
                    expect=201,
                    json={
                        "title": f"Proyecto {k} de {commune.code}",
                        "description": "Priorizado",
                        "assembly_priority": k,
                        "category": "water",
                        "estimated_cost": 100_000 * k,
                    },
                )["id"]
                for k in range(1, CANDIDATES_PER_COMMUNE + 1)
            ]
        grant_tables(self.client, self.consultation_id, OFFICER, [{"code": c.code} for c in self.communes])
        freeze_roll(self.client, self.consultation_id)
        open_voting(self.client, self.consultation_id)

    # -- the vote ----------------------------------------------------------------------------------
    def ballots(self) -> list[dict[str, str]]:
        return [
            {
                "commune_id": commune.id,
                "candidate_id": self.candidates[commune.id][(c + v) % CANDIDATES_PER_COMMUNE],
                "national_id": voter,
                "channel": "table",
                "table_code": table_code(commune.code),
            }
            for c, commune in enumerate(self.communes)
            for v, voter in enumerate(commune.voters)
        ]

    def vote(self, ballots: list[dict[str, str]]) -> None:
        """Cast each ballot, again and again while the answer is 503 (a dependency is down)."""
        for body in ballots:
            deadline = time.monotonic() + RETRY_DEADLINE_SECONDS
            retried = False
            while True:
                status = self._cast(body)
                if status == 201 or (status == 403 and retried):
                    # A table's one refusal after a broken attempt: that attempt was stored after
                    # all (everyone here is on the roll); count it once.
                    self.cast[body["candidate_id"]] += 1
                    break
                self.refusals[status] += 1
                retried = True
                if status not in (0, 503) or time.monotonic() > deadline:
                    raise StepFailed(
                        f"ballot for {body['national_id']}: answered {status}; refusals so far {dict(self.refusals)}"
                    )
                time.sleep(0.1)

    def _cast(self, body: dict[str, str]) -> int:
        try:
            response = self.client.http.post(
                f"{self.client.urls['consultations']}{self.base}/ballots",
                json=body,
                headers=self.client.auth(OFFICER),
            )
        except httpx.TransportError:
            return 0
        return response.status_code

    def close(self) -> None:
        close_voting(self.client, self.consultation_id)

    # -- certification -------------------------------------------------------------------------------
    def certify_request(self) -> httpx.Response | None:
        """POST :certify once; None if the connection broke (the service crashed meanwhile)."""
        try:
            return self.client.http.post(
                f"{self.client.urls['consultations']}{self.base}:certify", headers=self.client.auth("operator")
            )
        except httpx.TransportError:
            return None

    def status(self) -> str:
        return str(self.client.call("GET", "consultations", self.base)["status"])

    def certify(self) -> None:
        """Certify unless an interrupted attempt already did (what an operator would check)."""
        if self.status() == "certified":
            return
        # A ballot retried after a lost answer leaves a conflict row: the auditor's recorded
        # decision lets such a commune be certified (the demo's rule).
        certify(self.client, self.base)

    # -- the event-driven rest of the cycle -----------------------------------------------------------
    def allocations(self) -> list[dict[str, Any]]:
        return _all_pages(self.client, "funding", "/v1/allocations", {"consultation_id": self.consultation_id})

    def projects(self) -> list[dict[str, Any]]:
        return _all_pages(self.client, "projects", "/v1/projects", {"consultation_id": self.consultation_id})

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = EVENT_DEADLINE_SECONDS) -> Any:
        try:
            return self.client.wait_for(what, probe, timeout=timeout)
        except StepFailed as exc:
            raise StepFailed(f"{exc}\n{self.diagnose()}") from None

    def wait_allocations(self) -> list[dict[str, Any]]:
        n = len(self.communes)
        return self.wait_for(f"{n} allocations", lambda: _at_least(self.allocations(), n, "allocations"))  # type: ignore[no-any-return]

    def wait_projects(self) -> list[dict[str, Any]]:
        n = len(self.communes)
        return self.wait_for(f"{n} projects", lambda: _at_least(self.projects(), n, "projects"))  # type: ignore[no-any-return]

    def verify_milestones(self) -> None:
        """Start each project, report every milestone done (the operator) and verify it (the
        overseer): each verification releases a tranche. A step already done answers 409."""
        for project in self.projects():
            base = f"/v1/projects/{project['id']}"
            self.client.call(
                "POST",
                "projects",
                f"{base}:start",
                as_user="operator",
                json={"spokespeople": ["Vocera"]},
                expect=(200, 409),
            )
            detail = self.client.call("GET", "projects", base)
            for milestone in sorted(detail["milestones"], key=lambda m: m["sequence"]):
                path = f"{base}/milestones/{milestone['id']}"
                for user, action in (("operator", "report"), (OVERSEER, "verify")):
                    self.client.call(
                        "POST",
                        "projects",
                        f"{path}:{action}",
                        as_user=user,
                        json={"note": "En sitio"},
                        expect=(200, 409),
                    )

    def wait_completed(self) -> None:
        """Once every tranche is paid: its spending with a receipt, then the project completed."""
        n = len(self.communes)
        paid = self.wait_for(
            f"{n} paid projects",
            lambda: _at_least([p for p in self.projects() if p["disbursed_minor"] == p["budget_minor"]], n, "paid"),
        )
        for project in paid:
            base = f"/v1/projects/{project['id']}"
            receipt = self.client.call(
                "POST", "projects", "/v1/evidence:upload", as_user="operator", content=png(base), expect=201
            )
            if project["spent_minor"] < project["disbursed_minor"]:
                spent = {
                    "amount_minor": project["disbursed_minor"] - project["spent_minor"],
                    "currency": project["currency"],
                    "spent_on": datetime.now(UTC).date().isoformat(),
                    "supplier": "Ferretería",
                    "description": "Materiales",
                    "receipt_sha256": receipt["sha256"],
                }
                self.client.call("POST", "projects", f"{base}/expenditures", as_user="operator", json=spent, expect=201)
            self.client.call("POST", "projects", f"{base}:complete", as_user="operator", expect=(200, 409))
        self.wait_for(
            f"{n} completed projects",
            lambda: _at_least([p for p in self.projects() if p["status"] == "completed"], n, "completed projects"),
        )

    def finish(self) -> None:
        """Everything after certification: wait for grants and projects, verify, wait for tranches."""
        self.wait_allocations()
        self.wait_projects()
        self.verify_milestones()
        self.wait_completed()

    def run_until_certified(self) -> None:
        self.open()
        self.vote(self.ballots())
        self.close()
        self.certify()


def _at_least(rows: list[Any], expected: int, what: str) -> list[Any] | None:
    if len(rows) > expected:
        raise StepFailed(f"{len(rows)} {what}, expected {expected}: more than one per commune")
    return rows if len(rows) == expected else None


def _all_pages(client: PlatformClient, service: str, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = client.call("GET", service, path, params={**params, "limit": 500, **({"after": after} if after else {})})
        rows += items(page)
        after = page.get("next_after")
        if not after:
            return rows
