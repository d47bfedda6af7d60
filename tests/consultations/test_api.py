"""REST edges: authentication, roles and territory, malformed input, unknown ids, lifecycle order."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from comuna_consultations.service import SPEC as CONSULTATIONS
from comuna_consultations.settings import Settings as ConsultationsSettings
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.auth.roles import Role
from comuna_platform.events import outbox_table
from comuna_platform.paging import encode_page_token
from tests.consultations.conftest import CONSULTATIONS_MIGRATIONS
from tests.consultations.helpers import (
    ADULT,
    CANDIDATE_COST,
    OPERATOR,
    SCHEDULE,
    Consultation,
    Stack,
    add_candidate,
    close_voting,
    next_code,
    officer,
    open_consultation,
    operator,
    register_residents,
    rows,
    spokesperson,
    start_voting,
    table_code,
    transition,
    vote,
    voting_consultation,
)
from tests.support.identity import person
from tests.support.issuer import TestIssuer
from tests.support.service import fresh_database, running_service

pytestmark = pytest.mark.asyncio

C1, C2 = "VE.01.01.C1", "VE.01.01.C2"


async def consultation_count(stack: Stack) -> int:
    return len((await stack.consultations.client.get("/v1/consultations", params={"limit": 100})).json()["items"])


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"code": "2026-Q5"}, "validation_error"),
        ({"code": "26-Q1"}, "validation_error"),
        ({"title": ""}, "validation_error"),
        ({"extra": True}, "validation_error"),
        ({"voting_opens_at": "2026-03-01T06:00:00"}, "validation_error"),  # no time zone
        ({"voting_closes_at": "not a date"}, "validation_error"),
        ({"voting_opens_at": "2025-12-01T06:00:00Z"}, "schedule_invalid"),  # before the assemblies
        ({"voting_closes_at": "2026-03-01T06:00:00-04:00"}, "schedule_invalid"),  # closes as it opens
    ],
)
async def test_malformed_consultations_are_422_and_write_nothing(
    stack: Stack, issuer: TestIssuer, change: dict[str, Any], code: str
) -> None:
    before = await consultation_count(stack)
    body = {"code": next_code(), "title": "Consulta", **SCHEDULE, **change}
    response = await stack.consultations.client.post("/v1/consultations", json=body, headers=operator(issuer))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert await consultation_count(stack) == before


async def test_not_json_is_422(stack: Stack, issuer: TestIssuer) -> None:
    response = await stack.consultations.client.post(
        "/v1/consultations", content=b"{not json", headers={**operator(issuer), "content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_duplicate_code_is_409(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    body = {"code": consultation.code, "title": "Otra", **SCHEDULE}
    response = await stack.consultations.client.post("/v1/consultations", json=body, headers=operator(issuer))
    assert response.status_code == 409
    assert response.json()["code"] == "consultation_exists"


async def test_who_may_open_a_consultation(stack: Stack, issuer: TestIssuer) -> None:
    client = stack.consultations.client
    body = {"code": next_code(), "title": "Consulta", **SCHEDULE}
    assert (await client.post("/v1/consultations", json=body)).status_code == 401
    expired = person(issuer, OPERATOR, ttl=-120)
    response = await client.post("/v1/consultations", json=body, headers=expired)
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"
    wrong_role = await client.post("/v1/consultations", json=body, headers=spokesperson(issuer, C1))
    assert wrong_role.status_code == 403
    assert wrong_role.json()["code"] == "forbidden_role"
    # The token claims the operator role nationwide; identity knows no assignment of its subject.
    claimed = issuer.headers(subject="nobody", realm_access={"roles": ["operator"]}, comuna_territories=["VE"])
    assert (await client.post("/v1/consultations", json=body, headers=claimed)).json()["code"] == "forbidden_role"
    # An operator assignment must be held at the country: a regional official is not one.
    regional = await stack.authority.headers(Role.REGIONAL_OFFICIAL, "VE.01")
    response = await client.post("/v1/consultations", json=body, headers=regional)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden_role")
    assert (await client.get(f"/v1/consultations?page_token={encode_page_token(body['code'])}")).status_code == 200


async def test_consultation_pages_use_opaque_tokens(stack: Stack, issuer: TestIssuer) -> None:
    first = await open_consultation(stack, issuer)
    second = await open_consultation(stack, issuer)
    client = stack.consultations.client
    seen, token = [], ""
    while True:
        page = (await client.get("/v1/consultations", params={"limit": 1, "page_token": token})).json()
        seen += [c["code"] for c in page["items"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert {first.code, second.code} <= set(seen) and seen == sorted(seen, reverse=True)
    communes = (await client.get(f"/v1/consultations/{first.id}/communes", params={"limit": 2})).json()
    rest = (
        await client.get(f"/v1/consultations/{first.id}/communes", params={"page_token": communes["next_page_token"]})
    ).json()
    assert len({c["code"] for c in communes["items"] + rest["items"]}) == len(communes["items"]) + len(rest["items"])
    # Found by fuzzing as 500s once: a NUL, or a token we never issued, is refused before the database.
    for path in ("/v1/consultations", f"/v1/consultations/{first.id}/communes"):
        for forged in ("%00", "Zm9v", "djE6WyJcdTAwMDAiXQ"):
            refused = await client.get(f"{path}?page_token={forged}")
            # A NUL never reaches the page decoder: the platform's input check refuses it first.
            expected = "validation_error" if forged == "%00" else "invalid_page_token"
            assert refused.status_code == 422 and refused.json()["code"] == expected, refused.text


async def test_candidates_are_recorded_by_the_communes_spokesperson(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    foreign = await add_candidate(stack, issuer, consultation, C1, 1, headers=spokesperson(issuer, C2))
    assert foreign.status_code == 403
    assert foreign.json()["code"] == "forbidden_territory"
    table_officer = await add_candidate(
        stack, issuer, consultation, C1, 1, headers=await officer(stack, consultation.id, C1)
    )
    assert table_officer.status_code == 403
    expired = await add_candidate(
        stack, issuer, consultation, C1, 1, headers=person(issuer, "spokesperson@VE.01.01.C1", ttl=-120)
    )
    assert expired.status_code == 401
    assert await rows(stack, "candidates", consultation.id) == 0

    assert (await add_candidate(stack, issuer, consultation, C1, 2)).status_code == 201
    assert (await add_candidate(stack, issuer, consultation, C1, 1, headers=operator(issuer))).status_code == 201
    taken = await add_candidate(stack, issuer, consultation, C1, 2)
    assert taken.status_code == 409
    assert taken.json()["code"] == "candidate_priority_taken"
    listing = await stack.consultations.client.get(
        f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[C1]}/candidates"
    )
    assert [c["assembly_priority"] for c in listing.json()["items"]] == [1, 2]

    url = f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[C1]}/candidates"
    for bad in (
        {"title": "x", "assembly_priority": 0},
        {"title": "", "assembly_priority": 3},
        {"title": "x", "assembly_priority": 3, "votes": 10},
        {"title": "x"},
    ):
        response = await stack.consultations.client.post(url, json=bad, headers=spokesperson(issuer, C1))
        assert response.status_code == 422, bad
    assert await rows(stack, "candidates", consultation.id) == 2

    await start_voting(stack, issuer, consultation)
    late = await add_candidate(stack, issuer, consultation, C1, 3)
    assert late.status_code == 409
    assert late.json()["code"] == "registration_closed"


async def test_lifecycle_order_is_enforced(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    certify = await transition(stack, issuer, consultation.id, "certify")
    assert (certify.status_code, certify.json()["code"]) == (409, "certification_not_open")
    await start_voting(stack, issuer, consultation)
    assert (await transition(stack, issuer, consultation.id, "certify")).status_code == 409
    denied = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}:amend-schedule",
        json={"reason": "x", "voting_closes_at": (stack.clock.now() + timedelta(hours=1)).isoformat()},
        headers=spokesperson(issuer, C1),
    )
    assert denied.status_code == 403
    await close_voting(stack, issuer, consultation)
    certified = await transition(stack, issuer, consultation.id, "certify")
    assert certified.status_code == 200
    assert certified.json()["certified_at"] is not None
    assert (certified.json()["status"], certified.json()["phase"]) == ("certified", "certification")
    again = await transition(stack, issuer, consultation.id, "certify")
    assert again.json()["code"] == "consultation_already_certified"


async def test_ballot_before_voting_is_409(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    consultation = await open_consultation(stack, issuer)
    assert (await add_candidate(stack, issuer, consultation, C1, 1)).status_code == 201
    early = await vote(stack, issuer, consultation, C1, consultation.candidates[C1][0], voter)
    assert early.status_code == 409
    assert early.json()["code"] == "consultation_not_in_voting"
    # Right after voting opens the ballot is accepted (no stale cached schedule).
    await start_voting(stack, issuer, consultation)
    assert (await vote(stack, issuer, consultation, C1, consultation.candidates[C1][0], voter)).status_code == 201


async def test_malformed_ballots_are_422(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    good = {
        "commune_id": str(stack.commune_ids[C1]),
        "candidate_id": consultation.candidates[C1][0],
        "national_id": "V1",
        "table_code": table_code(C1),
        "channel": "table",
    }
    for change in (
        {"channel": "fax"},
        {"commune_id": "nope"},
        {"national_id": ""},
        {"national_id": "1" * 21},
        {"voter_ref": "x"},
    ):
        response = await stack.consultations.client.post(
            f"/v1/consultations/{consultation.id}/ballots",
            json={**good, **change},
            headers=await officer(stack, consultation.id, C1),
        )
        assert response.status_code == 422, change
    missing = {k: v for k, v in good.items() if k != "channel"}
    response = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/ballots",
        json=missing,
        headers=await officer(stack, consultation.id, C1),
    )
    assert response.status_code == 422
    assert await rows(stack, "participations", consultation.id) == 0


async def test_unknown_consultation_is_404(stack: Stack, issuer: TestIssuer) -> None:
    client = stack.consultations.client
    unknown = uuid.uuid4()
    commune = stack.commune_ids[C1]
    table_officer = await officer(stack, str(unknown), C1)
    checks = [
        await client.get(f"/v1/consultations/{unknown}"),
        await client.get(f"/v1/consultations/{unknown}/communes"),
        await client.get(f"/v1/consultations/{unknown}/results"),
        await client.get(f"/v1/consultations/{unknown}/communes/{commune}/results"),
        await client.get(f"/v1/consultations/{unknown}/communes/{commune}/candidates"),
        await client.post(
            f"/v1/consultations/{unknown}/communes/{commune}/candidates",
            json={"title": "x", "assembly_priority": 1, **CANDIDATE_COST},
            headers=operator(issuer),
        ),
        await client.post(
            f"/v1/consultations/{unknown}:amend-schedule",
            json={"reason": "x", "voting_closes_at": "2099-01-01T00:00:00Z"},
            headers=operator(issuer),
        ),
        await client.post(f"/v1/consultations/{unknown}:certify", headers=operator(issuer)),
        await client.post(
            f"/v1/consultations/{unknown}/ballots",
            headers=table_officer,
            json={
                "commune_id": str(commune),
                "candidate_id": str(uuid.uuid4()),
                "national_id": "V1",
                "table_code": table_code(C1),
                "channel": "table",
            },
        ),
    ]
    for response in checks:
        assert response.status_code == 404, (response.request.url, response.text)
        assert response.json()["code"] == "consultation_not_found"
    assert (await client.get(f"/v1/consultations/{unknown}/receipts/{'A' * 22}")).status_code == 404
    assert (await client.get("/v1/consultations/not-a-uuid")).status_code == 422


async def test_unknown_commune_is_404(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    url = f"/v1/consultations/{consultation.id}/communes/{uuid.uuid4()}/candidates"
    response = await stack.consultations.client.post(
        url, json={"title": "x", "assembly_priority": 1, **CANDIDATE_COST}, headers=operator(issuer)
    )
    assert response.status_code == 404
    assert response.json()["code"] == "commune_not_found"
    assert (await stack.consultations.client.get(url)).status_code == 404


async def test_identity_down_is_503_and_writes_nothing(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> None:
    url = fresh_database(embedded_postgres, f"consultations_down_{uuid.uuid4().hex[:8]}", CONSULTATIONS_MIGRATIONS)
    async with running_service(
        CONSULTATIONS,
        ConsultationsSettings,
        database_url=url,
        nats_url=embedded_nats.url,
        issuer=issuer,
        identity_grpc_target=f"127.0.0.1:{free_port()}",
        identity_timeout_seconds=2.0,
    ) as service:
        response = await service.client.post(
            "/v1/consultations", headers=operator(issuer), json={"code": next_code(), "title": "x", **SCHEDULE}
        )
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "identity_unavailable"
        assert (await service.client.get("/v1/consultations")).json()["items"] == []


async def test_concurrent_duplicates_are_decided_by_the_database(stack: Stack, issuer: TestIssuer) -> None:
    client = stack.consultations.client
    body = {"code": next_code(), "title": "Consulta", **SCHEDULE}
    opened = await asyncio.gather(
        *(client.post("/v1/consultations", json=body, headers=operator(issuer)) for _ in range(8))
    )
    assert sorted(r.status_code for r in opened) == [201] + [409] * 7
    consultation = Consultation(next(r for r in opened if r.status_code == 201).json()["id"], body["code"])

    recorded = await asyncio.gather(*(add_candidate(stack, issuer, consultation, C1, 1) for _ in range(8)))
    assert sorted(r.status_code for r in recorded) == [201] + [409] * 7
    assert await rows(stack, "candidates", consultation.id) == 1

    await start_voting(stack, issuer, consultation)
    await close_voting(stack, issuer, consultation)
    certified = await asyncio.gather(*(transition(stack, issuer, consultation.id, "certify") for _ in range(4)))
    assert sorted(r.status_code for r in certified) == [200, 409, 409, 409]
    assert await rows(stack, "results", consultation.id) == 1
    async with stack.consultations.runtime.db.transaction() as session:
        subjects = (
            (
                await session.execute(
                    select(outbox_table.c.subject).where(outbox_table.c.aggregate_id == consultation.id)
                )
            )
            .scalars()
            .all()
        )
    assert sorted(subjects) == sorted(
        [
            "consultations.consultation.opened",
            "consultations.candidate.recorded",
            "consultations.schedule.amended",
            "consultations.schedule.amended",
            "consultations.consultation.certified",
        ]
    )
