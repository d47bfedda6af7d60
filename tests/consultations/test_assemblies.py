"""Assemblies and prioritisation: sessions with their proposals, and the commune's ordered
candidate list under the declared rules; every refusal writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.consultations.helpers import (
    Consultation,
    Stack,
    open_consultation,
    operator,
    rows,
    spokesperson,
)
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1, C2 = "VE.01.01.C1", "VE.01.01.C2"
COUNCIL = uuid.uuid4()  # a council feeding the commune (recorded as given: see assemblies/usecases.py)
MINUTES_SHA256 = "9f" * 32


@pytest.fixture(autouse=True)
def real_time_again(stack: Stack) -> Iterator[None]:
    yield
    stack.clock.set(datetime.now(UTC))


def proposal(title: str, cost: int, category: str = "water") -> dict[str, Any]:
    return {
        "title": title,
        "problem": f"{title}: the neighbourhood has none",
        "category": category,
        "estimated_cost": cost,
        "proposing_council_id": str(COUNCIL),
    }


def session_body(stack: Stack, *proposals: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "council_id": str(COUNCIL),
        "held_at": (stack.clock.now() - timedelta(days=1)).isoformat(),
        "place": "Casa comunal",
        "attendance": 84,
        "minutes": "Se debatieron tres propuestas.",
        "minutes_sha256": MINUTES_SHA256,
        "proposals": list(proposals),
        **changes,
    }


async def record(
    stack: Stack, issuer: TestIssuer, consultation: Consultation, commune: str, body: dict[str, Any]
) -> httpx.Response:
    return await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[commune]}/assemblies",
        json=body,
        headers=spokesperson(issuer, commune),
    )


async def prioritise(
    stack: Stack, issuer: TestIssuer, consultation: Consultation, commune: str, ids: list[str]
) -> httpx.Response:
    return await stack.consultations.client.put(
        f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[commune]}/prioritisation",
        json={"proposal_ids": ids},
        headers=spokesperson(issuer, commune),
    )


async def test_a_session_is_recorded_with_its_proposals_and_bad_ones_write_nothing(
    stack: Stack, issuer: TestIssuer
) -> None:
    consultation = await open_consultation(stack, issuer)
    bad: list[dict[str, Any]] = [
        {"minutes_sha256": "9F" * 32},  # not lowercase hex
        {"minutes_sha256": "9f" * 31},  # 62 characters
        {"attendance": -1},
        {"place": ""},
        {"held_at": "2026-01-01T00:00:00"},  # no zone
        {"proposals": [proposal("Agua", 0)]},
        {"proposals": [proposal("Agua", 100, category="spaceflight")]},
        {"proposals": [{**proposal("Agua", 100), "proposing_council_id": "nope"}]},
        {"proposals": [{**proposal("Agua", 100), "currency": "EUR"}]},  # not the consultation's currency
        {"held_at": (stack.clock.now() + timedelta(hours=1)).isoformat()},  # not held yet
    ]
    for change in bad:
        response = await record(stack, issuer, consultation, C1, session_body(stack, proposal("Agua", 100), **change))
        assert response.status_code == 422, (change, response.text)
    other = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[C1]}/assemblies",
        json=session_body(stack),
        headers=spokesperson(issuer, C2),
    )
    assert (other.status_code, other.json()["code"]) == (403, "forbidden_territory")
    assert await rows(stack, "assembly_sessions", consultation.id) == 0
    assert await rows(stack, "proposals", consultation.id) == 0

    recorded = await record(
        stack,
        issuer,
        consultation,
        C1,
        session_body(stack, proposal("Agua potable", 400_000), proposal("Cancha", 150_000, "sports")),
    )
    assert recorded.status_code == 201, recorded.text
    body = recorded.json()
    assert (body["attendance"], body["minutes_sha256"], body["council_id"]) == (84, MINUTES_SHA256, str(COUNCIL))
    assert sorted(p["title"] for p in body["proposals"]) == ["Agua potable", "Cancha"]
    listed = (
        await stack.consultations.client.get(
            f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[C1]}/assemblies"
        )
    ).json()["items"]
    assert [s["id"] for s in listed] == [body["id"]]
    assert await rows(stack, "proposals", consultation.id) == 2

    # Assemblies run while registration is open on the clock.
    stack.clock.set(datetime.fromisoformat(body["recorded_at"]) + timedelta(days=60))
    late = await record(stack, issuer, consultation, C1, session_body(stack))
    assert (late.status_code, late.json()["code"]) == (409, "registration_closed")


async def test_prioritisation_keeps_the_declared_rules_and_replaces_the_list(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer, max_candidates=2, funds_per_commune=500_000)
    first = await record(
        stack,
        issuer,
        consultation,
        C1,
        session_body(
            stack,
            proposal("Agua", 400_000),
            proposal("Escuela", 300_000, "education"),
            proposal("Luz", 200_000, "electricity"),
            proposal("Hospital", 900_000, "health"),  # more than the funds announced
        ),
    )
    assert first.status_code == 201, first.text
    ids = {p["title"]: p["id"] for p in first.json()["proposals"]}
    elsewhere = await record(
        stack, issuer, consultation, C2, session_body(stack, proposal("Vialidad", 100_000, "roads"))
    )
    foreign = elsewhere.json()["proposals"][0]["id"]

    refusals = [
        ([ids["Agua"], ids["Escuela"], ids["Luz"]], 422, "too_many_candidates"),
        ([ids["Agua"], ids["Agua"]], 422, "duplicate_proposal"),
        ([ids["Hospital"]], 422, "cost_exceeds_funds"),
        ([ids["Agua"], foreign], 422, "proposal_not_in_commune"),
        ([str(uuid.uuid4())], 404, "proposal_not_found"),
        ([], 422, None),
    ]
    for order, status, code in refusals:
        response = await prioritise(stack, issuer, consultation, C1, order)
        assert response.status_code == status, (order, response.text)
        if code:
            assert response.json()["code"] == code
    assert await rows(stack, "candidates", consultation.id) == 0
    assert await rows(stack, "prioritisations", consultation.id) == 0
    url = f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[C1]}"
    assert (await stack.consultations.client.get(f"{url}/prioritisation")).status_code == 404
    denied = await stack.consultations.client.put(
        f"{url}/prioritisation", json={"proposal_ids": [ids["Agua"]]}, headers=spokesperson(issuer, C2)
    )
    assert denied.status_code == 403

    done = await prioritise(stack, issuer, consultation, C1, [ids["Escuela"], ids["Agua"]])
    assert done.status_code == 200, done.text
    assert [(c["proposal_id"], c["assembly_priority"]) for c in done.json()["candidates"]] == [
        (ids["Escuela"], 1),
        (ids["Agua"], 2),
    ]
    candidates = (await stack.consultations.client.get(f"{url}/candidates")).json()["items"]
    assert [(c["title"], c["category"], c["estimated_cost"], c["proposing_council_id"]) for c in candidates] == [
        ("Escuela", "education", 300_000, str(COUNCIL)),
        ("Agua", "water", 400_000, str(COUNCIL)),
    ]

    # A new list replaces the old one (while registration is open), recorded with who and when.
    again = await stack.consultations.client.put(
        f"{url}/prioritisation", json={"proposal_ids": [ids["Luz"]]}, headers=operator(issuer)
    )
    assert again.status_code == 200, again.text
    public = (await stack.consultations.client.get(f"{url}/prioritisation")).json()
    assert public["proposal_ids"] == [ids["Luz"]]
    assert public["recorded_by"] and public["recorded_at"]
    assert [c["title"] for c in public["candidates"]] == ["Luz"]
    assert await rows(stack, "candidates", consultation.id) == 1

    stack.clock.set(stack.clock.now() + timedelta(days=60))
    closed = await prioritise(stack, issuer, consultation, C1, [ids["Agua"]])
    assert (closed.status_code, closed.json()["code"]) == (409, "registration_closed")
    assert [c["title"] for c in (await stack.consultations.client.get(f"{url}/candidates")).json()["items"]] == ["Luz"]
