"""Identity REST API against real PostgreSQL and NATS: territories, census, auth, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text

from comuna_identity.storage.models import Resident, Territory
from comuna_platform.auth.roles import Role
from tests.identity.authority import OPERATOR, REGISTRAR, ensure_root, grant, person
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio


def registrar(issuer: TestIssuer) -> dict[str, str]:
    """The national registrar `seed` grants (a token with no roles or territories of its own)."""
    return person(issuer, REGISTRAR)


async def count(service: RunningService, model: Any) -> int:
    async with service.runtime.db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def seed(service: RunningService, issuer: TestIssuer, prefix: str = "VE", since: str | None = None) -> None:
    """The country root and a national registrar and operator (seeded), then a small tree over REST
    (in the register from `since`, default today)."""
    await ensure_root(service)
    await grant(service, REGISTRAR, Role.REGISTRAR, "VE")
    await grant(service, OPERATOR, Role.OPERATOR, "VE")
    h = registrar(issuer)
    client = service.client
    tree = [
        (f"{prefix}.01", "Lara", "state", prefix),
        (f"{prefix}.01.01", "Iribarren", "municipality", f"{prefix}.01"),
        (f"{prefix}.01.01.C1", "Comuna Uno", "commune", f"{prefix}.01.01"),
        (f"{prefix}.01.01.C1.CC1", "Consejo Uno", "communal_council", f"{prefix}.01.01.C1"),
        (f"{prefix}.01.01.C2", "Circuito Dos", "communal_circuit", f"{prefix}.01.01"),
        (f"{prefix}.01.01.C2.CC1", "Consejo Dos", "communal_council", f"{prefix}.01.01.C2"),
    ]
    for code, name, kind, parent in tree:
        body = {"code": code, "name": name, "kind": kind, "parent_code": parent}
        if since is not None:
            body["valid_from"] = since
        response = await client.post("/v1/territories", json=body, headers=h)
        assert response.status_code in (201, 409), response.text


async def test_territory_tree_and_ancestors(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer)
    response = await identity.client.get("/v1/territories/VE.01.01.C1.CC1")
    assert response.status_code == 200
    detail = response.json()
    assert [a["code"] for a in detail["ancestors"]] == ["VE", "VE.01", "VE.01.01", "VE.01.01.C1"]
    page = (await identity.client.get("/v1/territories", params={"parent_code": "VE.01.01"})).json()
    assert [t["code"] for t in page["items"]] == ["VE.01.01.C1", "VE.01.01.C2"]
    assert page["next_page_token"] is None
    assert {t["kind"] for t in page["items"]} == {"commune", "communal_circuit"}


async def test_territories_page_with_opaque_tokens(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer)
    seen, token = [], ""
    while True:
        params: dict[str, str | int] = {"parent_code": "VE.01.01", "limit": 1}
        if token:
            params["page_token"] = token
        page = (await identity.client.get("/v1/territories", params=params)).json()
        seen += [t["code"] for t in page["items"]]
        token = page["next_page_token"]
        if token is None:
            break
        assert "VE" not in token  # opaque, not the raw code
    assert seen == ["VE.01.01.C1", "VE.01.01.C2"]


@pytest.mark.parametrize("token", ["%00", "Zm9v", "djE6WyJcdTAwMDAiXQ"])
async def test_a_forged_page_token_is_refused_before_the_database(identity: RunningService, token: str) -> None:
    response = await identity.client.get(f"/v1/territories?page_token={token}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    # A NUL never gets as far as the page decoder: the platform's input check refuses it first.
    assert response.json()["code"] == ("validation_error" if token == "%00" else "invalid_page_token")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"code": "VE.01.01.C9", "name": "X", "kind": "commune", "parent_code": "VE.01"},
            422,
            "territory_parent_invalid",
        ),
        (
            # Codes are human identifiers: a municipality's code need not extend its state's,
            # but a council never sits directly under a state.
            {"code": "CC-LOOSE", "name": "X", "kind": "communal_council", "parent_code": "VE.01"},
            422,
            "territory_parent_invalid",
        ),
        ({"code": "VE.01.P1", "name": "X", "kind": "parish", "parent_code": "VE.01"}, 422, "territory_parent_invalid"),
        ({"code": "VE.09", "name": "X", "kind": "state", "parent_code": "VE.77"}, 404, "territory_not_found"),
        ({"code": "VE.01", "name": "Dup", "kind": "state", "parent_code": "VE"}, 409, "territory_exists"),
        ({"code": "ve.bad code", "name": "X", "kind": "state", "parent_code": "VE"}, 422, "validation_error"),
        ({"code": "VE.05", "name": "X", "kind": "planet", "parent_code": "VE"}, 422, "validation_error"),
        ({"code": "VE.05", "name": "X", "kind": "state", "parent_code": "VE", "extra": 1}, 422, "validation_error"),
    ],
)
async def test_bad_territories_are_refused_and_write_nothing(
    identity: RunningService, issuer: TestIssuer, body: dict[str, Any], status: int, code: str
) -> None:
    await seed(identity, issuer)
    before = await count(identity, Territory)
    response = await identity.client.post("/v1/territories", json=body, headers=registrar(issuer))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert await count(identity, Territory) == before


async def test_malformed_json_is_a_problem(identity: RunningService, issuer: TestIssuer) -> None:
    headers = {**registrar(issuer), "content-type": "application/json"}
    response = await identity.client.post("/v1/territories", content=b"{not json", headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    ("headers_kind", "status", "code"),
    [
        ("none", 401, "token_missing"),
        ("expired", 401, "token_expired"),
        ("foreign", 401, "token_invalid"),
        ("wrong_role", 403, "forbidden_role"),
        ("wrong_territory", 403, "forbidden_territory"),
    ],
)
async def test_auth_is_enforced(
    identity: RunningService, issuer: TestIssuer, headers_kind: str, status: int, code: str
) -> None:
    await seed(identity, issuer)
    await grant(identity, "subject-spokesperson-c1", Role.SPOKESPERSON, "VE.01.01.C1")
    await grant(identity, "subject-registrar-c2", Role.REGISTRAR, "VE.01.01.C2")
    headers = {
        "none": {},
        "expired": person(issuer, REGISTRAR, ttl=-120),
        "foreign": person(issuer, REGISTRAR, iss="https://evil.example/realms/x"),
        # A territory claim grants nothing: only identity's assignments count.
        "wrong_role": person(issuer, "subject-spokesperson-c1", comuna_territories=["VE"]),
        "wrong_territory": person(issuer, "subject-registrar-c2", comuna_territories=["VE"]),
    }[headers_kind]
    before = await count(identity, Resident)
    body = {"national_id": "V-11.222.333", "birth_date": "1990-01-01", "council_code": "VE.01.01.C1.CC1"}
    response = await identity.client.post("/v1/residents", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["code"] in {code, "token_issuer"}
    assert await count(identity, Resident) == before


async def test_census_stores_only_keyed_hashes(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer)
    body = {"national_id": "V-20.123.456", "birth_date": "2001-05-05", "council_code": "VE.01.01.C1.CC1"}
    response = await identity.client.post("/v1/residents", json=body, headers=registrar(issuer))
    assert response.status_code == 201, response.text
    async with identity.runtime.db.transaction() as session:
        dump = (await session.execute(text("SELECT row_to_json(r)::text FROM residents r"))).scalars().all()
    assert all("20123456" not in row for row in dump)
    # Another spelling of the same number is the same person.
    again = {**body, "national_id": "v20123456"}
    response = await identity.client.post("/v1/residents", json=again, headers=registrar(issuer))
    assert response.status_code == 409
    assert response.json()["code"] == "resident_exists"


async def test_batch_is_all_or_nothing(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer)
    before = await count(identity, Resident)
    residents = [
        {"national_id": f"V{30_000_000 + i}", "birth_date": "1980-01-01", "council_code": "VE.01.01.C1.CC1"}
        for i in range(5)
    ]
    residents.append({"national_id": "V30000001", "birth_date": "1980-01-01", "council_code": "VE.01.01.C1.CC1"})
    response = await identity.client.post(
        "/v1/residents:batch", json={"residents": residents}, headers=registrar(issuer)
    )
    assert response.status_code == 409
    residents[-1]["council_code"] = "VE.01.01.C1.CC404"
    response = await identity.client.post(
        "/v1/residents:batch", json={"residents": residents}, headers=registrar(issuer)
    )
    assert response.status_code == 404
    assert await count(identity, Resident) == before
    response = await identity.client.post(
        "/v1/residents:batch", json={"residents": residents[:5]}, headers=registrar(issuer)
    )
    assert response.status_code == 201
    assert await count(identity, Resident) == before + 5
