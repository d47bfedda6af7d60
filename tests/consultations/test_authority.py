"""Where a person may act comes from identity's assignments, over real gRPC and NATS: role and
territory from the same assignment, token claims worth nothing, revocations effective at once."""

from __future__ import annotations

import logging
import time

import pytest

from comuna_platform.auth.roles import Role
from tests.consultations.helpers import Stack, add_candidate, open_consultation, rows
from tests.support.identity import person
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio
log = logging.getLogger(__name__)

C1, C2, C3 = "VE.01.01.C1", "VE.01.01.C2", "VE.01.02.C3"
# Far longer than any invalidation takes, far shorter than the cache's TTL (access_cache_seconds).
REVOCATION_DEADLINE_SECONDS = 15.0


async def test_a_spokesperson_of_one_commune_cannot_act_in_another(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    headers = await stack.authority.headers(Role.SPOKESPERSON, C1)
    assert (await add_candidate(stack, issuer, consultation, C1, 1, headers=headers)).status_code == 201
    for commune in (C2, C3):
        refused = await add_candidate(stack, issuer, consultation, commune, 1, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_territory")
    assert await rows(stack, "candidates", consultation.id) == 1


async def test_role_and_territory_come_from_the_same_assignment(stack: Stack, issuer: TestIssuer) -> None:
    # Overseer of C1 and spokesperson of C2: a spokesperson somewhere, present in C1, yet no
    # spokesperson OF C1.
    subject = "overseer-c1-spokesperson-c2"
    await stack.authority.grant(subject, Role.OVERSEER, C1)
    await stack.authority.grant(subject, Role.SPOKESPERSON, C2)
    consultation = await open_consultation(stack, issuer)
    refused = await add_candidate(stack, issuer, consultation, C1, 1, headers=person(issuer, subject))
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_territory")
    allowed = await add_candidate(stack, issuer, consultation, C2, 1, headers=person(issuer, subject))
    assert allowed.status_code == 201


async def test_token_claims_gain_nothing(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    # A spokesperson of C1 whose token also claims the whole country and the operator role.
    await stack.authority.grant("claims-everything", Role.SPOKESPERSON, C1)
    bogus = issuer.headers(
        subject="claims-everything", realm_access={"roles": ["operator", "spokesperson"]}, comuna_territories=["VE"]
    )
    elsewhere = await add_candidate(stack, issuer, consultation, C2, 1, headers=bogus)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "forbidden_territory")
    opened = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}:amend-schedule",
        json={"reason": "claims", "voting_closes_at": "2099-01-01T00:00:00Z"},
        headers=bogus,
    )
    assert (opened.status_code, opened.json()["code"]) == (403, "forbidden_role")
    # The claim removed, nothing changes for the assignment itself.
    assert (await add_candidate(stack, issuer, consultation, C1, 1, headers=bogus)).status_code == 201
    plain = person(issuer, "claims-everything")
    assert (await add_candidate(stack, issuer, consultation, C1, 2, headers=plain)).status_code == 201


async def test_a_revocation_takes_effect_on_identitys_event(stack: Stack, issuer: TestIssuer) -> None:
    subject = "spokesperson-to-revoke"
    await stack.authority.grant(subject, Role.SPOKESPERSON, C1)
    consultation = await open_consultation(stack, issuer)
    headers = person(issuer, subject)
    url = f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[C1]}/candidates"
    invalid_body = {"title": "x"}  # 422 while allowed, 403 once not: the probe never writes

    async def probe() -> int:
        return (await stack.consultations.client.post(url, json=invalid_body, headers=headers)).status_code

    # The answer is now cached in consultations for access_cache_seconds (30 s by default).
    assert (await add_candidate(stack, issuer, consultation, C1, 1, headers=headers)).status_code == 201
    assert await probe() == 422
    revoked_at = await stack.authority.revoke_all(subject)
    deadline = revoked_at + REVOCATION_DEADLINE_SECONDS
    probes = 0
    while (status := await probe()) != 403:
        probes += 1
        assert status == 422, status
        assert time.monotonic() < deadline, "revocation not effective before the deadline"
    delay_ms = (time.monotonic() - revoked_at) * 1000
    log.warning("revocation effective after %.1f ms (%d probes still allowed)", delay_ms, probes)
    print(f"\nrevocation effective after {delay_ms:.1f} ms ({probes} probes still allowed)")
    refused = await add_candidate(stack, issuer, consultation, C1, 2, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_role")
    assert await rows(stack, "candidates", consultation.id) == 1
