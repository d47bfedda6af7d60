"""The seed entry points `keycloak sync` calls: idempotent, announced once, rules still apply;
and who may register territories now that the token's claims grant nothing."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from comuna_identity.domain.access import ensure_assignment, ensure_territory
from comuna_identity.storage.models import RoleAssignment, Territory
from comuna_platform.auth.roles import Role
from comuna_platform.errors import InvalidInput, NotFound
from comuna_platform.events.tables import outbox_table
from tests.identity.authority import OPERATOR, grant, person
from tests.identity.test_registry_api import count, seed
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio


async def outbox_count(service: RunningService, event_type: str) -> int:
    async with service.runtime.db.transaction() as session:
        query = select(func.count()).select_from(outbox_table).where(outbox_table.c.event_type == event_type)
        return int((await session.execute(query)).scalar_one())


async def test_seeding_twice_changes_nothing(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer)
    subject = f"subject-{uuid.uuid4()}"
    consultation = str(uuid.uuid4())
    granted_before = await outbox_count(identity, "comuna.identity.v1.RoleAssignmentGranted")
    territories_before = await count(identity, Territory)

    firsts: list[bool] = []
    seconds: list[bool] = []
    for results in (firsts, seconds):
        async with identity.runtime.db.unit_of_work() as uow:
            results.append(await ensure_territory(uow, code="VE.09", name="Seeded", kind="state", parent_code="VE"))
            results.append(
                await ensure_territory(uow, code="VE.09.01", name="M", kind="municipality", parent_code="VE.09")
            )
            results.append(
                await ensure_assignment(uow, subject=subject, role="regional_official", territory_code="VE.09")
            )
            results.append(
                await ensure_assignment(
                    uow,
                    subject=subject,
                    role=Role.TABLE_OFFICER,
                    territory_code="VE.01.01.C1",
                    consultation_id=consultation,
                    table_code="T1",
                )
            )
    assert firsts == [True, True, True, True]
    assert seconds == [False, False, False, False]
    assert await count(identity, Territory) == territories_before + 2
    assert await outbox_count(identity, "comuna.identity.v1.RoleAssignmentGranted") == granted_before + 2
    async with identity.runtime.db.transaction() as session:
        rows = (await session.execute(select(RoleAssignment).where(RoleAssignment.subject == subject))).scalars().all()
    assert {row.granted_by for row in rows} == {"bootstrap"}


@pytest.mark.parametrize(
    ("terms", "error", "code"),
    [
        ({"role": Role.OPERATOR, "territory_code": "VE.01"}, InvalidInput, "role_territory_invalid"),
        ({"role": "emperor", "territory_code": "VE"}, InvalidInput, "role_invalid"),
        ({"role": Role.OVERSEER, "territory_code": "VE.77"}, NotFound, "territory_not_found"),
        ({"role": Role.TABLE_OFFICER, "territory_code": "VE.01.01.C1"}, InvalidInput, "table_terms_invalid"),
        (
            {"role": Role.TABLE_OFFICER, "territory_code": "VE.01.01.C1", "consultation_id": "x", "table_code": "T"},
            InvalidInput,
            "invalid_id",
        ),
    ],
)
async def test_the_seed_still_follows_the_rules(
    identity: RunningService, issuer: TestIssuer, terms: dict[str, object], error: type[Exception], code: str
) -> None:
    await seed(identity, issuer)
    with pytest.raises(error) as refused:
        async with identity.runtime.db.unit_of_work() as uow:
            await ensure_assignment(uow, subject="seeded", **terms)  # type: ignore[arg-type]
    assert getattr(refused.value, "code", None) == code


@pytest.mark.parametrize(
    ("who", "role", "held_at", "body", "status", "code"),
    [
        ("op", Role.OPERATOR, "VE", {"code": "VE.21", "kind": "state", "parent_code": "VE"}, 201, None),
        (
            "reg",
            Role.REGISTRAR,
            "VE.01.01.C1",
            {"code": "VE.01.01.C1.CC7", "kind": "communal_council", "parent_code": "VE.01.01.C1"},
            201,
            None,
        ),
        (
            "reg",
            Role.REGISTRAR,
            "VE.01.01.C1",
            {"code": "VE.01.01.C2.CC7", "kind": "communal_council", "parent_code": "VE.01.01.C2"},
            403,
            "forbidden_territory",
        ),
        (
            "off",
            Role.REGIONAL_OFFICIAL,
            "VE.01",
            {"code": "VE.01.09", "kind": "municipality", "parent_code": "VE.01"},
            403,
            "forbidden_role",
        ),
        ("reg", Role.REGISTRAR, "VE", {"code": "ROOT2", "kind": "country", "parent_code": None}, 403, "forbidden_role"),
    ],
)
async def test_who_registers_territories(
    identity: RunningService,
    issuer: TestIssuer,
    who: str,
    role: Role,
    held_at: str,
    body: dict[str, object],
    status: int,
    code: str | None,
) -> None:
    await seed(identity, issuer)
    subject = f"subject-territory-{who}-{held_at}"
    await grant(identity, subject, role, held_at)
    before = await count(identity, Territory)
    response = await identity.client.post(
        "/v1/territories", json={**body, "name": "X"}, headers=person(issuer, subject)
    )
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["code"] == code
        assert await count(identity, Territory) == before


async def test_the_seeded_authorities_are_people_not_claims(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer)
    # Same token shape, a subject with no assignment: nothing is allowed.
    body = {"code": "VE.22", "name": "X", "kind": "state", "parent_code": "VE"}
    stranger = person(issuer, "subject-stranger", realm_access={"roles": ["operator"]}, comuna_territories=["VE"])
    response = await identity.client.post("/v1/territories", json=body, headers=stranger)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden_role")
    assert (
        await identity.client.post("/v1/territories", json=body, headers=person(issuer, OPERATOR))
    ).status_code == 201
