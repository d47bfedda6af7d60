"""ResolvePrincipal over a real gRPC server: only assignments in force, the linked resident,
empty for an unknown subject, INVALID_ARGUMENT for an empty one, services only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import pytest_asyncio
from sqlalchemy import update

from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_identity.service import SPEC
from comuna_identity.storage.models import RoleAssignment
from comuna_platform.auth.roles import Role
from comuna_platform.rpc import error_code_of
from tests.identity.authority import grant
from tests.identity.test_grpc import service_token
from tests.identity.test_registry_api import registrar, seed
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

Stub = identity_pb2_grpc.IdentityServiceStub


@pytest_asyncio.fixture(scope="module")
async def stub(identity: RunningService, issuer: TestIssuer) -> AsyncIterator[Stub]:
    await seed(identity, issuer)
    async with grpc_server(SPEC, identity) as target, grpc.aio.insecure_channel(target) as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]


async def test_only_assignments_in_force_are_answered(identity: RunningService, issuer: TestIssuer, stub: Stub) -> None:
    subject = f"subject-{uuid.uuid4()}"
    now = datetime.now(UTC)
    consultation = uuid.uuid4()
    await grant(identity, subject, Role.REGISTRAR, "VE.01")
    await grant(identity, subject, Role.TABLE_OFFICER, "VE.01.01.C1", consultation_id=consultation, table_code="T1")
    # Not in force: ended yesterday, starts tomorrow, revoked.
    await grant(identity, subject, Role.OVERSEER, "VE.01.01.C1", valid_from=now - timedelta(days=2), valid_until=now)
    await grant(identity, subject, Role.SPOKESPERSON, "VE.01.01.C1", valid_from=now + timedelta(days=1))
    await grant(identity, subject, Role.SPOKESPERSON, "VE.01.01.C2")
    async with identity.runtime.db.transaction() as session:
        await session.execute(
            update(RoleAssignment)
            .where(RoleAssignment.subject == subject, RoleAssignment.role == Role.SPOKESPERSON)
            .where(RoleAssignment.valid_from < now + timedelta(hours=1))  # not the one starting tomorrow
            .values(revoked_at=now, revoked_by="test", revoke_reason="test")
        )

    reply = await stub.ResolvePrincipal(pb.ResolvePrincipalRequest(subject=subject), metadata=service_token(issuer))

    assert reply.subject == subject
    assert reply.resident_id == ""
    assert reply.resolved_at.ToDatetime(tzinfo=UTC) >= now
    held = sorted((a.role, a.territory.code, a.consultation_id, a.table_code) for a in reply.assignments)
    assert held == [
        ("registrar", "VE.01", "", ""),
        ("table_officer", "VE.01.01.C1", str(consultation), "T1"),
    ]
    assert all(a.id and a.HasField("valid_from") and not a.HasField("valid_until") for a in reply.assignments)


async def test_an_unknown_subject_is_an_empty_answer(issuer: TestIssuer, stub: Stub) -> None:
    reply = await stub.ResolvePrincipal(pb.ResolvePrincipalRequest(subject="nobody"), metadata=service_token(issuer))
    assert (reply.subject, list(reply.assignments), reply.resident_id) == ("nobody", [], "")


async def test_an_empty_subject_is_invalid_argument(issuer: TestIssuer, stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ResolvePrincipal(pb.ResolvePrincipalRequest(subject=""), metadata=service_token(issuer))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code_of(refused.value) == "subject_required"


async def test_a_person_cannot_resolve_anyone(issuer: TestIssuer, stub: Stub) -> None:
    metadata = [("authorization", f"Bearer {issuer.token(subject='someone', roles=[])}")]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ResolvePrincipal(pb.ResolvePrincipalRequest(subject="someone"), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_linked_resident_resolves_to_its_census_record(
    identity: RunningService, issuer: TestIssuer, stub: Stub
) -> None:
    subject = f"subject-{uuid.uuid4()}"
    resident = {"national_id": "V7100001", "birth_date": "1970-01-01", "council_code": "VE.01.01.C1.CC1"}
    registered = await identity.client.post("/v1/residents", json=resident, headers=registrar(issuer))
    assert registered.status_code == 201, registered.text
    link = {"national_id": "V7100001", "subject": subject}
    linked = await identity.client.post("/v1/residents:link", json=link, headers=registrar(issuer))
    assert linked.status_code == 201, linked.text

    reply = await stub.ResolvePrincipal(pb.ResolvePrincipalRequest(subject=subject), metadata=service_token(issuer))

    assert reply.resident_id == registered.json()["id"]
    assert [(a.role, a.territory.code) for a in reply.assignments] == [("resident", "VE.01.01.C1.CC1")]
