"""Co-funding through the real service: funders registered and pledged by the officials of their
territory, rules validated when declared, a dry run for the certified results, the plan applied
on the consultation's certification (national grant, a state's capped rank-2 funding, a
municipality's 30% match), and a recount applied by reversing and re-allocating."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna_funding.domain import ledger
from comuna_platform.auth.roles import Role
from tests.funding.helpers import eventually, publish
from tests.support.identity import Identity
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

COMMUNE_RESULT = "consultations.commune_result.certified"
CONSULTATION = "consultations.consultation.certified"
# commune code -> (rank 1 cost, rank 2 cost)
COSTS = {"VE.01.01.C1": (1_200_000, 800_000), "VE.01.01.C2": (900_000, 1_000_000), "VE.01.02.C3": (500_000, 700_000)}
RULES = [
    {"funder": "national", "tier": 1, "ranks": [1], "per_project_cap_minor": 1_000_000},
    {"funder": "lara", "tier": 2, "ranks": [2], "total_cap_minor": 1_500_000},
    {"funder": "iribarren", "tier": 3, "ranks": [1], "share_bp": 3_000, "per_project_cap_minor": 300_000},
]


@pytest_asyncio.fixture(scope="module")
async def operator(identity: Identity) -> dict[str, str]:
    return await identity.headers(Role.OPERATOR, "VE")


async def call(funding: RunningService, method: str, path: str, headers: dict | None = None, **kw: Any) -> Any:
    return await funding.client.request(method, path, headers=headers or {}, **kw)


def result(
    consultation_id: str, identity: Identity, code: str, candidates: list[tuple[str, int]], version: int = 1
) -> consultation_events.CommuneResultCertified:
    return consultation_events.CommuneResultCertified(
        consultation_id=consultation_id,
        consultation_code="2026-Q4",
        funds_currency="USD",
        result=consultation_events.CommuneResult(
            commune_id=str(identity.territory_ids[code]),
            commune_code=code,
            commune_name=code,
            ballots=10,
            winner_candidate_id=candidates[0][0],
            candidates=[
                consultation_events.CandidateResult(
                    candidate_id=cid,
                    title=f"Proyecto {code} {rank}",
                    votes=10 - rank,
                    rank=rank,
                    estimated_cost_minor=cost,
                )
                for rank, (cid, cost) in enumerate(candidates, start=1)
            ],
            version=version,
            supersedes_version=version - 1,
            recount_reason="recount" if version > 1 else "",
        ),
    )


async def register(funding: RunningService, operator: dict, name: str, territory: str) -> None:
    body = {
        "name": name,
        "display_name": name.title(),
        "kind": "pledge",
        "currency": "USD",
        "territory_code": territory,
    }
    response = await call(funding, "POST", "/v1/funders", operator, json=body)
    assert response.status_code in (200, 201), response.text
    again = await call(funding, "POST", "/v1/funders", operator, json=body)
    assert again.status_code == 200
    other = await call(funding, "POST", "/v1/funders", operator, json={**body, "territory_code": "VE.01.02"})
    assert other.status_code == 409 and other.json()["code"] == "funder_exists"


async def test_funders_pledges_rules_plan_and_recount(
    funding: RunningService, identity: Identity, operator: dict, js: JetStreamContext
) -> None:
    await register(funding, operator, "lara", "VE.01")
    await register(funding, operator, "iribarren", "VE.01.01")
    funders = {f["name"]: f for f in (await call(funding, "GET", "/v1/funders")).json()["items"]}
    assert {"national", "lara", "iribarren"} <= set(funders) and funders["national"]["kind"] == "national"

    # Pledges and deposits: the funder's own officials (or an operator), never another territory's.
    regional = await identity.headers(Role.REGIONAL_OFFICIAL, "VE.01")
    municipal = await identity.headers(Role.MUNICIPAL_OFFICIAL, "VE.01.01")
    elsewhere = await identity.headers(Role.MUNICIPAL_OFFICIAL, "VE.01.02")
    pledge = {"id": str(uuid.uuid4()), "amount_minor": 2_000_000, "reference": "Decreto 7"}
    assert (await call(funding, "POST", "/v1/funders/lara/pledges", regional, json=pledge)).status_code == 201
    assert (await call(funding, "POST", "/v1/funders/lara/pledges", regional, json=pledge)).status_code == 200
    small = {"id": str(uuid.uuid4()), "amount_minor": 300_000, "reference": "Acuerdo 3"}
    refused = await call(funding, "POST", "/v1/funders/iribarren/pledges", elsewhere, json=small)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden_territory"
    assert (await call(funding, "POST", "/v1/funders/iribarren/pledges", municipal, json=small)).status_code == 201
    deposit = {"id": str(uuid.uuid4()), "amount_minor": 300_000}
    assert (await call(funding, "POST", "/v1/funders/iribarren/deposits", municipal, json=deposit)).status_code == 201
    over = await call(
        funding, "POST", "/v1/funders/iribarren/deposits", municipal, json={"id": str(uuid.uuid4()), "amount_minor": 1}
    )
    assert over.status_code == 409 and over.json()["code"] == "deposit_exceeds_pledges"

    consultation_id = str(uuid.uuid4())
    rules_path = f"/v1/consultations/{consultation_id}/funding-rules"
    # Bad rules are refused with a reason and store nothing.
    for bad, code in (
        ([*RULES, {**RULES[1], "funder": "iribarren", "ranks": [2, 3]}], "rules_overlap"),
        ([{**RULES[2], "territory_code": "VE.01.02"}], "rule_territory_outside_funder"),
        ([{**RULES[1], "total_cap_minor": -1}], "rule_cap_invalid"),
        ([{**RULES[0], "funder": "nobody"}], "rule_funder_unknown"),
    ):
        response = await call(funding, "PUT", rules_path, operator, json={"rules": bad})
        assert response.status_code == 422 and response.json()["code"] == code, response.text
    assert (await call(funding, "GET", rules_path)).json()["rules"] == []
    assert (await call(funding, "PUT", rules_path, regional, json={"rules": RULES})).status_code == 403
    declared = await call(funding, "PUT", rules_path, operator, json={"rules": RULES})
    assert declared.status_code == 200, declared.text

    candidates = {code: [(str(uuid.uuid4()), costs[0]), (str(uuid.uuid4()), costs[1])] for code, costs in COSTS.items()}
    for code, ranked in candidates.items():
        await publish(js, COMMUNE_RESULT, result(consultation_id, identity, code, ranked))

    async def planned() -> dict | None:
        plan = (await call(funding, "GET", f"/v1/consultations/{consultation_id}/funding-plan")).json()
        return plan if len(plan["projects"]) == 6 else None

    plan = await eventually(planned, "a dry run over the three communes")
    amounts = {(a["commune_code"], a["rank"], a["funder"]): a["amount_minor"] for a in plan["allocations"]}
    assert amounts == {
        ("VE.01.01.C1", 1, "national"): 1_000_000,
        ("VE.01.01.C1", 1, "iribarren"): 200_000,
        ("VE.01.01.C1", 2, "lara"): 800_000,
        ("VE.01.01.C2", 1, "national"): 900_000,
        ("VE.01.01.C2", 2, "lara"): 700_000,
        ("VE.01.02.C3", 1, "national"): 500_000,
    }
    unfunded = {(p["commune_code"], p["rank"]): p["unfunded_minor"] for p in plan["projects"]}
    assert unfunded[("VE.01.01.C2", 2)] == 300_000 and unfunded[("VE.01.02.C3", 2)] == 700_000
    # A dry run moves nothing.
    assert (await call(funding, "GET", "/v1/allocations", params={"consultation_id": consultation_id})).json()[
        "items"
    ] == []

    await publish(
        js,
        CONSULTATION,
        consultation_events.ConsultationCertified(consultation_id=consultation_id, code="2026-Q4", commune_count=3),
    )

    async def allocations(n: int) -> list[dict] | None:
        page = await call(funding, "GET", "/v1/allocations", params={"consultation_id": consultation_id})
        items = page.json()["items"]
        return items if len(items) == n else None

    made = await eventually(lambda: allocations(6), "six allocations")
    assert {(a["commune_code"], a["funding_source"]): a["amount_minor"] for a in made} == {
        (code, funder): amount for (code, _, funder), amount in amounts.items()
    }
    rules_now = (await call(funding, "GET", rules_path)).json()
    assert rules_now["in_force"] is True
    fixed = await call(funding, "PUT", rules_path, operator, json={"rules": RULES[:1]})
    assert fixed.status_code == 409 and fixed.json()["code"] == "rules_in_force"

    # A recount of C2 swaps its ranking: the difference is reversed and re-allocated.
    c2 = candidates["VE.01.01.C2"]
    await publish(js, COMMUNE_RESULT, result(consultation_id, identity, "VE.01.01.C2", [c2[1], c2[0]], version=2))

    async def recounted() -> list[dict] | None:
        page = await call(funding, "GET", "/v1/allocations", params={"consultation_id": consultation_id, "limit": 50})
        items = page.json()["items"]
        return items if len(items) >= 8 else None

    every = await eventually(recounted, "the recount's new generation")
    live = {
        (a["commune_code"], a["candidate_id"], a["funding_source"]): a["amount_minor"]
        for a in every
        if a["status"] in ("committed", "reserving")
    }
    assert live[("VE.01.01.C2", c2[1][0], "national")] == 1_000_000
    assert live[("VE.01.01.C2", c2[0][0], "lara")] == 700_000
    assert ("VE.01.01.C2", c2[0][0], "national") not in live
    assert sum(1 for a in every if a["status"] == "reversed") >= 2
    async with funding.runtime.db.transaction() as session:
        assert await ledger.audit(session) == []
        assert all(t.balanced for t in await ledger.ledger_totals(session))
