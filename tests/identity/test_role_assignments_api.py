"""Role assignments over REST against real PostgreSQL and NATS: who grants what where, revocation
and its event, visibility, the caller's own resolution. Tokens carry a subject only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.subscription import Subscription

from comuna.identity.v1 import events_pb2
from comuna_devstack.nats import EmbeddedNats
from comuna_identity.domain.access import ensure_territory
from comuna_identity.storage.models import RoleAssignment
from comuna_platform.auth.roles import Role
from tests.identity.authority import OPERATOR, ensure_root, grant, person
from tests.identity.test_registry_api import count, seed
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

LARA_OFFICIAL = "subject-lara-official"
ZULIA_OFFICIAL = "subject-zulia-official"
C1_REGISTRAR = "subject-c1-registrar"
AUDITOR = "subject-auditor"
C1 = "VE.01.01.C1"
ZULIA_COMMUNE = "VE.02.01.C1"


@pytest_asyncio.fixture(scope="module", autouse=True)
async def authorities(identity: RunningService, issuer: TestIssuer) -> None:
    """Two states, an official in each, a registrar of one commune, an auditor (seeded)."""
    await ensure_root(identity)
    await seed(identity, issuer)
    async with identity.runtime.db.unit_of_work() as uow:
        await ensure_territory(uow, code="VE.02", name="Zulia", kind="state", parent_code="VE")
        await ensure_territory(uow, code="VE.02.01", name="Maracaibo", kind="municipality", parent_code="VE.02")
        await ensure_territory(uow, code=ZULIA_COMMUNE, name="Comuna Zulia", kind="commune", parent_code="VE.02.01")
    await grant(identity, LARA_OFFICIAL, Role.REGIONAL_OFFICIAL, "VE.01")
    await grant(identity, ZULIA_OFFICIAL, Role.REGIONAL_OFFICIAL, "VE.02")
    await grant(identity, C1_REGISTRAR, Role.REGISTRAR, C1)
    await grant(identity, AUDITOR, Role.AUDITOR, "VE")


def body(role: Role, territory_code: str, subject: str | None = None, **terms: Any) -> dict[str, Any]:
    return {"subject": subject or f"subject-{uuid.uuid4()}", "role": role, "territory_code": territory_code, **terms}


async def post_grant(service: RunningService, issuer: TestIssuer, granter: str, payload: dict[str, Any]) -> Any:
    return await service.client.post("/v1/role-assignments", json=payload, headers=person(issuer, granter))


async def test_an_operator_grants_anything_anywhere_once(identity: RunningService, issuer: TestIssuer) -> None:
    payload = body(Role.REGIONAL_OFFICIAL, "VE.02")
    response = await post_grant(identity, issuer, OPERATOR, payload)
    assert response.status_code == 201, response.text
    granted = response.json()
    assert (granted["role"], granted["territory_code"], granted["granted_by"]) == (
        "regional_official",
        "VE.02",
        OPERATOR,
    )
    assert granted["revoked_at"] is None and granted["valid_until"] is None
    again = await post_grant(identity, issuer, OPERATOR, payload)
    assert again.status_code == 409
    assert again.json()["code"] == "assignment_exists"


@pytest.mark.parametrize(
    ("granter", "payload", "status", "code"),
    [
        (LARA_OFFICIAL, body(Role.SPOKESPERSON, ZULIA_COMMUNE), 403, "forbidden_territory"),
        (LARA_OFFICIAL, body(Role.REGISTRAR, "VE.02"), 403, "forbidden_territory"),
        (LARA_OFFICIAL, body(Role.OPERATOR, "VE"), 403, "forbidden_role"),
        (LARA_OFFICIAL, body(Role.REGIONAL_OFFICIAL, "VE.01"), 403, "forbidden_role"),
        (LARA_OFFICIAL, body(Role.SPOKESPERSON, C1, subject=LARA_OFFICIAL), 403, "own_assignment"),
        (C1_REGISTRAR, body(Role.REGISTRAR, C1), 403, "forbidden_role"),
        (C1_REGISTRAR, body(Role.OVERSEER, "VE.01.01.C2"), 403, "forbidden_territory"),
        (AUDITOR, body(Role.OVERSEER, C1), 403, "forbidden_role"),
        (OPERATOR, body(Role.RESIDENT, "VE.01.01.C1.CC1"), 403, "role_not_grantable"),
        (OPERATOR, body(Role.SPOKESPERSON, "VE.01"), 422, "role_territory_invalid"),
        (OPERATOR, body(Role.OPERATOR, "VE.01"), 422, "role_territory_invalid"),
        (OPERATOR, body(Role.TABLE_OFFICER, C1), 422, "table_terms_invalid"),
        (OPERATOR, body(Role.OVERSEER, C1, table_code="T1"), 422, "table_terms_invalid"),
        (OPERATOR, body(Role.OVERSEER, "VE.01.01.C404"), 404, "territory_not_found"),
        (
            OPERATOR,
            body(Role.OVERSEER, C1, valid_from="2027-01-02T00:00:00Z", valid_until="2027-01-01T00:00:00Z"),
            422,
            "validity_invalid",
        ),
        (OPERATOR, body(Role.OVERSEER, C1, valid_from="2027-01-02T00:00:00"), 422, "validation_error"),
        (OPERATOR, body("emperor", C1), 422, "validation_error"),  # type: ignore[arg-type]
        (OPERATOR, {**body(Role.OVERSEER, C1), "subject": ""}, 422, "validation_error"),
        ("subject-nobody", body(Role.OVERSEER, C1), 403, "forbidden_role"),
    ],
)
async def test_grants_outside_the_rules_are_refused_and_write_nothing(
    identity: RunningService, issuer: TestIssuer, granter: str, payload: dict[str, Any], status: int, code: str
) -> None:
    before = await count(identity, RoleAssignment)
    response = await post_grant(identity, issuer, granter, payload)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert await count(identity, RoleAssignment) == before


async def test_officials_and_registrars_grant_inside_their_territory(
    identity: RunningService, issuer: TestIssuer
) -> None:
    consultation = str(uuid.uuid4())
    cases = [
        (LARA_OFFICIAL, body(Role.MUNICIPAL_OFFICIAL, "VE.01.01")),
        (LARA_OFFICIAL, body(Role.REGISTRAR, "VE.01.01.C2")),
        (ZULIA_OFFICIAL, body(Role.SPOKESPERSON, ZULIA_COMMUNE)),
        (C1_REGISTRAR, body(Role.TABLE_OFFICER, C1, consultation_id=consultation, table_code="T-01")),
        (C1_REGISTRAR, body(Role.OVERSEER, C1, valid_until="2099-01-01T00:00:00Z")),
    ]
    for granter, payload in cases:
        response = await post_grant(identity, issuer, granter, payload)
        assert response.status_code == 201, (granter, response.text)
        assert response.json()["granted_by"] == granter


async def test_the_token_territory_claim_grants_nothing(identity: RunningService, issuer: TestIssuer) -> None:
    headers = person(issuer, ZULIA_OFFICIAL, comuna_territories=["VE"], realm_access={"roles": ["operator"]})
    response = await identity.client.post("/v1/role-assignments", json=body(Role.OVERSEER, C1), headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden_territory"


@pytest_asyncio.fixture
async def revocations(embedded_nats: EmbeddedNats) -> AsyncIterator[Subscription]:
    nc = await nats.connect(embedded_nats.url)
    try:
        yield await nc.subscribe("identity.role_assignment.revoked")
    finally:
        await nc.drain()


async def revoked_event(sub: Subscription, assignment_id: str) -> events_pb2.RoleAssignmentRevoked:
    async with asyncio.timeout(15):
        while True:
            msg = await sub.next_msg(timeout=15)
            assert msg.headers is not None
            assert msg.headers["ce-type"] == "comuna.identity.v1.RoleAssignmentRevoked"
            event = events_pb2.RoleAssignmentRevoked.FromString(msg.data)
            if event.assignment_id == assignment_id:
                return event


async def test_revocation_takes_effect_and_is_announced(
    identity: RunningService, issuer: TestIssuer, revocations: Subscription
) -> None:
    holder = f"subject-{uuid.uuid4()}"
    granted = (await post_grant(identity, issuer, C1_REGISTRAR, body(Role.SPOKESPERSON, C1, subject=holder))).json()
    me = (await identity.client.get("/v1/me", headers=person(issuer, holder))).json()
    assert [(a["role"], a["territory_code"]) for a in me["assignments"]] == [("spokesperson", C1)]

    url = f"/v1/role-assignments/{granted['id']}:revoke"
    # Another state's official does not even see it; the holder cannot revoke their own.
    outsider = await identity.client.post(url, json={"reason": "x"}, headers=person(issuer, ZULIA_OFFICIAL))
    assert (outsider.status_code, outsider.json()["code"]) == (404, "assignment_not_found")
    own = await identity.client.post(url, json={"reason": "x"}, headers=person(issuer, holder))
    assert (own.status_code, own.json()["code"]) == (403, "own_assignment")

    response = await identity.client.post(
        url, json={"reason": "left the commune"}, headers=person(issuer, LARA_OFFICIAL)
    )
    assert response.status_code == 200, response.text
    assert (response.json()["revoked_by"], response.json()["revoke_reason"]) == (LARA_OFFICIAL, "left the commune")
    event = await revoked_event(revocations, granted["id"])
    assert (event.subject, event.reason) == (holder, "left the commune")

    twice = await identity.client.post(url, json={"reason": "again"}, headers=person(issuer, OPERATOR))
    assert (twice.status_code, twice.json()["code"]) == (409, "already_revoked")
    me = (await identity.client.get("/v1/me", headers=person(issuer, holder))).json()
    assert me["assignments"] == []
    # Granting the same terms again is allowed once the old one is revoked.
    again = await post_grant(identity, issuer, C1_REGISTRAR, body(Role.SPOKESPERSON, C1, subject=holder))
    assert again.status_code == 201


async def test_each_caller_lists_what_they_may_grant_in(identity: RunningService, issuer: TestIssuer) -> None:
    async def codes(who: str, **params: str) -> set[str]:
        seen: set[str] = set()
        token = ""
        while True:
            query = {**params, "limit": "2", **({"page_token": token} if token else {})}
            response = await identity.client.get("/v1/role-assignments", params=query, headers=person(issuer, who))
            assert response.status_code == 200, response.text
            page = response.json()
            seen |= {a["territory_code"] for a in page["items"]}
            token = page["next_page_token"]
            if token is None:
                return seen

    everywhere = await codes(AUDITOR)
    assert {"VE", "VE.01", "VE.02", C1} <= everywhere
    assert all(c == "VE.02" or c.startswith("VE.02.") for c in await codes(ZULIA_OFFICIAL) - {"VE.02"})
    assert "VE.01" not in await codes(ZULIA_OFFICIAL)
    assert await codes(C1_REGISTRAR) == {C1}
    assert await codes(AUDITOR, territory_code="VE.02", role="regional_official") == {"VE.02"}
    only = await identity.client.get(
        "/v1/role-assignments", params={"subject": LARA_OFFICIAL}, headers=person(issuer, AUDITOR)
    )
    assert [a["subject"] for a in only.json()["items"]] == [LARA_OFFICIAL]
    # Someone who grants nothing still sees their own.
    spokesperson = f"subject-{uuid.uuid4()}"
    await grant(identity, spokesperson, Role.SPOKESPERSON, ZULIA_COMMUNE)
    assert await codes(spokesperson) == {ZULIA_COMMUNE}


async def test_reading_one_assignment_respects_visibility(identity: RunningService, issuer: TestIssuer) -> None:
    listed = await identity.client.get(
        "/v1/role-assignments", params={"subject": LARA_OFFICIAL}, headers=person(issuer, AUDITOR)
    )
    assignment_id = listed.json()["items"][0]["id"]
    url = f"/v1/role-assignments/{assignment_id}"
    assert (await identity.client.get(url, headers=person(issuer, AUDITOR))).status_code == 200
    assert (await identity.client.get(url, headers=person(issuer, LARA_OFFICIAL))).status_code == 200
    hidden = await identity.client.get(url, headers=person(issuer, ZULIA_OFFICIAL))
    assert (hidden.status_code, hidden.json()["code"]) == (404, "assignment_not_found")
    bad = await identity.client.get("/v1/role-assignments/not-an-id", headers=person(issuer, AUDITOR))
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_id")
    forged = await identity.client.get(
        "/v1/role-assignments", params={"page_token": "Zm9v"}, headers=person(issuer, AUDITOR)
    )
    assert (forged.status_code, forged.json()["code"]) == (422, "invalid_page_token")


async def test_anonymous_callers_get_401(identity: RunningService) -> None:
    for method, url in [("GET", "/v1/me"), ("GET", "/v1/role-assignments"), ("POST", "/v1/role-assignments")]:
        response = await identity.client.request(method, url, json={} if method == "POST" else None)
        assert response.status_code == 401, url
