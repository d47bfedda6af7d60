"""What identity writes to its audit log today (territories, residents, role assignments,
accounts and enrolment codes), read over REST: entries for national auditors and operators, the
head for anyone. Real PostgreSQL, NATS and Keycloak tokens."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from comuna_identity.domain import audit
from comuna_identity.storage import audit_log
from comuna_identity.storage.models import AuditLogEntry
from comuna_platform.auth.roles import Role
from tests.identity.authority import OPERATOR, REGISTRAR, grant, person
from tests.identity.test_registry_api import registrar, seed
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

AUDITOR = "subject-audit-auditor"
C1_REGISTRAR = "subject-audit-c1-registrar"
COUNCIL = "VE.01.01.C1.CC1"
DOC = "V-55.123.456"


@pytest_asyncio.fixture(scope="module", autouse=True)
async def world(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer)
    await grant(identity, AUDITOR, Role.AUDITOR, "VE")
    await grant(identity, C1_REGISTRAR, Role.REGISTRAR, "VE.01.01.C1")


async def entries(identity: RunningService) -> list[AuditLogEntry]:
    async with identity.runtime.db.transaction() as session:
        return list((await session.execute(select(AuditLogEntry).order_by(AuditLogEntry.seq))).scalars())


async def since(identity: RunningService, seq: int) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.object_kind) for e in await entries(identity) if e.seq > seq]


async def head_seq(identity: RunningService) -> int:
    async with identity.runtime.db.transaction() as session:
        return (await audit_log.head(session, audit.GENESIS)).seq


async def test_seeding_and_registering_territories_are_audited(identity: RunningService) -> None:
    logged = [(e.actor, e.action) for e in await entries(identity)]
    # The seed (no caller) is "bootstrap"; territories created over REST name the registrar.
    assert ("bootstrap", "territory.created") in logged
    assert ("bootstrap", "role_assignment.granted") in logged
    assert (REGISTRAR, "territory.created") in logged
    territory = next(e for e in await entries(identity) if e.actor == REGISTRAR and e.action == "territory.created")
    assert territory.before_hash is None and territory.after_hash is not None


async def test_residents_grants_revocations_and_enrolment_are_audited(
    identity: RunningService, issuer: TestIssuer
) -> None:
    start = await head_seq(identity)
    client = identity.client
    body = {"national_id": DOC, "birth_date": "1990-05-01", "council_code": COUNCIL}
    registered = await client.post("/v1/residents", json=body, headers=registrar(issuer))
    assert registered.status_code == 201, registered.text
    granted = await client.post(
        "/v1/role-assignments",
        json={"subject": "subject-audit-spoke", "role": "spokesperson", "territory_code": "VE.01.01.C1"},
        headers=person(issuer, OPERATOR),
    )
    assert granted.status_code == 201, granted.text
    revoked = await client.post(
        f"/v1/role-assignments/{granted.json()['id']}:revoke",
        json={"reason": "auditing"},
        headers=person(issuer, OPERATOR),
    )
    assert revoked.status_code == 200, revoked.text
    issued = await client.post(
        "/v1/residents:enrolment-code", json={"national_id": DOC}, headers=person(issuer, C1_REGISTRAR)
    )
    assert issued.status_code == 201, issued.text
    reissued = await client.post(
        "/v1/residents:enrolment-code", json={"national_id": DOC}, headers=person(issuer, C1_REGISTRAR)
    )
    assert reissued.status_code == 201
    resident_subject = str(uuid.uuid4())
    wrong = await client.post(
        "/v1/enrolment:redeem",
        json={"national_id": DOC, "code": "2222-2222-2222"},
        headers=person(issuer, resident_subject),
    )
    assert wrong.status_code == 403
    redeemed = await client.post(
        "/v1/enrolment:redeem",
        json={"national_id": DOC, "code": reissued.json()["code"]},
        headers=person(issuer, resident_subject),
    )
    assert redeemed.status_code == 200, redeemed.text

    assert await since(identity, start) == [
        (REGISTRAR, "resident.registered", "resident"),
        (OPERATOR, "role_assignment.granted", "role_assignment"),
        (OPERATOR, "role_assignment.revoked", "role_assignment"),
        (C1_REGISTRAR, "enrolment_code.issued", "enrolment_code"),
        (C1_REGISTRAR, "enrolment_code.burnt", "enrolment_code"),
        (C1_REGISTRAR, "enrolment_code.issued", "enrolment_code"),
        (resident_subject, "enrolment_code.attempt_refused", "enrolment_code"),
        (resident_subject, "role_assignment.granted", "role_assignment"),
        (resident_subject, "resident_account.linked", "resident_account"),
        (resident_subject, "enrolment_code.redeemed", "enrolment_code"),
    ]
    logged = [e for e in await entries(identity) if e.seq > start]
    assert logged[0].object_id == registered.json()["id"]
    revocation = logged[2]
    assert revocation.object_id == granted.json()["id"]
    assert revocation.before_hash is not None and revocation.after_hash is not None
    assert revocation.before_hash != revocation.after_hash
    # Never the document (nor its digits) in what the log keeps.
    digits = "55123456"
    for entry in logged:
        assert digits not in f"{entry.actor}{entry.action}{entry.object_kind}{entry.object_id}"
    assert (await verify_all(identity)).intact


async def test_linking_in_person_is_audited(identity: RunningService, issuer: TestIssuer) -> None:
    body = {"national_id": "V-55.000.777", "birth_date": "1985-02-03", "council_code": COUNCIL}
    assert (await identity.client.post("/v1/residents", json=body, headers=registrar(issuer))).status_code == 201
    start = await head_seq(identity)
    subject = str(uuid.uuid4())
    linked = await identity.client.post(
        "/v1/residents:link",
        json={"national_id": "V-55.000.777", "subject": subject},
        headers=person(issuer, C1_REGISTRAR),
    )
    assert linked.status_code == 201, linked.text
    assert await since(identity, start) == [
        (C1_REGISTRAR, "role_assignment.granted", "role_assignment"),
        (C1_REGISTRAR, "resident_account.linked", "resident_account"),
    ]
    assert (await entries(identity))[-1].object_id == subject


async def test_a_refused_change_leaves_no_entry(identity: RunningService, issuer: TestIssuer) -> None:
    start = await head_seq(identity)
    duplicate = await identity.client.post(
        "/v1/territories",
        json={"code": "VE.01", "name": "Lara", "kind": "state", "parent_code": "VE"},
        headers=person(issuer, OPERATOR),
    )
    assert duplicate.status_code == 409
    assert await head_seq(identity) == start


async def verify_all(identity: RunningService) -> audit.Verification:
    async with identity.runtime.db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        return await audit.verify(audit_log.walk(driver))


async def test_national_auditors_and_operators_page_through_the_entries(
    identity: RunningService, issuer: TestIssuer
) -> None:
    stored = await entries(identity)
    seen: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        response = await identity.client.get(
            "/v1/audit", params={"after_seq": after, "limit": 7}, headers=person(issuer, AUDITOR)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["items"]
        after = page["next_after_seq"]
    assert [item["seq"] for item in seen] == [e.seq for e in stored]
    first = seen[0]
    assert first["prev_hash"] == "00" * 32
    assert first["entry_hash"] == stored[0].entry_hash.hex()
    assert all(seen[i]["prev_hash"] == seen[i - 1]["entry_hash"] for i in range(1, len(seen)))
    operator = await identity.client.get("/v1/audit", params={"limit": 1}, headers=person(issuer, OPERATOR))
    assert operator.status_code == 200
    assert operator.json()["next_after_seq"] == 1


@pytest.mark.parametrize("subject", [REGISTRAR, C1_REGISTRAR, "subject-audit-nobody"])
async def test_others_may_not_read_the_entries(identity: RunningService, issuer: TestIssuer, subject: str) -> None:
    response = await identity.client.get("/v1/audit", headers=person(issuer, subject))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden_role"


async def test_reading_the_entries_needs_a_token(identity: RunningService) -> None:
    assert (await identity.client.get("/v1/audit")).status_code == 401


@pytest.mark.parametrize("params", [{"after_seq": "-1"}, {"limit": "0"}, {"limit": "1001"}, {"after_seq": "x"}])
async def test_bad_paging_is_422(identity: RunningService, issuer: TestIssuer, params: dict[str, str]) -> None:
    response = await identity.client.get("/v1/audit", params=params, headers=person(issuer, AUDITOR))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_anyone_reads_the_head(identity: RunningService) -> None:
    response = await identity.client.get("/v1/audit/head")
    assert response.status_code == 200
    head = response.json()
    last = (await entries(identity))[-1]
    assert (head["seq"], head["entry_hash"]) == (last.seq, last.entry_hash.hex())
