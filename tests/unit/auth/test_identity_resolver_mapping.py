"""The protobuf edge of the gRPC resolver and its invalidation messages (pure logic: no server).

The resolver's calls to a real identity over gRPC and NATS are covered by the consultations,
funding and projects integration tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from comuna.common.v1.territory_pb2 import TERRITORY_KIND_COUNTRY, TERRITORY_KIND_STATE, TerritoryRef
from comuna.identity.v1 import events_pb2, identity_pb2
from comuna.identity.v1.access_pb2 import RoleAssignment
from comuna_platform.auth.access import Assignment, Caller, Resolution
from comuna_platform.auth.errors import PermissionDeniedError
from comuna_platform.auth.identity_resolver import GrpcAccessResolver, assignment_of, resolution_of
from comuna_platform.auth.principal import Principal
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Unavailable


def test_a_table_officer_assignment_keeps_its_consultation_table_and_end() -> None:
    end = Timestamp()
    end.FromDatetime(datetime(2027, 1, 1, tzinfo=UTC))
    message = RoleAssignment(
        id="a-1",
        role="table_officer",
        territory=TerritoryRef(code="VE.01.01.C1"),
        consultation_id="c-1",
        table_code="T1",
        valid_until=end,
    )
    assert assignment_of(message) == Assignment(
        Role.TABLE_OFFICER, "VE.01.01.C1", "a-1", "c-1", "T1", datetime(2027, 1, 1, tzinfo=UTC)
    )


def test_an_assignment_at_a_country_root_is_national_whatever_its_code() -> None:
    root = RoleAssignment(
        id="a", role="operator", territory=TerritoryRef(code="REPUBLICA", kind=TERRITORY_KIND_COUNTRY)
    )
    state = RoleAssignment(id="b", role="operator", territory=TerritoryRef(code="VE", kind=TERRITORY_KIND_STATE))
    first, second = assignment_of(root), assignment_of(state)
    assert first is not None and first.national
    assert second is not None and not second.national


def test_unknown_roles_are_dropped_and_empty_fields_are_none() -> None:
    response = identity_pb2.ResolvePrincipalResponse(
        subject="s",
        assignments=[
            RoleAssignment(id="a-1", role="emperor", territory=TerritoryRef(code="VE")),
            RoleAssignment(id="a-2", role="overseer", territory=TerritoryRef(code="VE.01.01.C1")),
        ],
    )
    resolution = resolution_of(response, "s")
    assert resolution == Resolution("s", (Assignment(Role.OVERSEER, "VE.01.01.C1", "a-2"),), None)


@dataclass
class Msg:
    subject: str
    data: bytes


async def resolver_with_entries() -> GrpcAccessResolver:
    resolver = GrpcAccessResolver(grpc.aio.insecure_channel("127.0.0.1:9"), cache_seconds=60)

    async def known(subject: str) -> Resolution:
        return Resolution(subject)

    resolver.cache._load = known
    await resolver.cache.get("ana")
    await resolver.cache.get("bob")
    return resolver


@pytest.mark.asyncio
async def test_an_assignment_event_drops_only_its_subject() -> None:
    resolver = await resolver_with_entries()
    revoked = events_pb2.RoleAssignmentRevoked(subject="ana", assignment_id="a-1")
    await resolver.on_message(Msg("identity.role_assignment.revoked", revoked.SerializeToString()))  # type: ignore[arg-type]
    assert len(resolver.cache) == 1
    granted = events_pb2.RoleAssignmentGranted(subject="bob")
    await resolver.on_message(Msg("identity.role_assignment.granted", granted.SerializeToString()))  # type: ignore[arg-type]
    assert len(resolver.cache) == 0
    await resolver.channel.close()


@pytest.mark.parametrize(
    ("subject", "data"),
    [("identity.role_assignment.revoked", b"\xff\xff\xff"), ("identity.role_assignment.renamed", b"")],
)
@pytest.mark.asyncio
async def test_an_unreadable_or_unknown_event_drops_everyone(subject: str, data: bytes) -> None:
    resolver = await resolver_with_entries()
    await resolver.on_message(Msg(subject, data))  # type: ignore[arg-type]
    assert len(resolver.cache) == 0
    await resolver.channel.close()


@pytest.mark.asyncio
async def test_a_reconnect_drops_everyone() -> None:
    resolver = await resolver_with_entries()
    resolver.on_reconnect()
    assert len(resolver.cache) == 0
    await resolver.channel.close()


@pytest.mark.asyncio
async def test_identity_unreachable_is_503_never_allowed() -> None:
    resolver = GrpcAccessResolver(grpc.aio.insecure_channel("127.0.0.1:9"), timeout=2.0)
    principal = Principal("ana", None, frozenset(), None)
    with pytest.raises(Unavailable) as info:
        await resolver.resolve(principal)
    assert (info.value.status, info.value.code) == (503, "identity_unavailable")
    await resolver.channel.close()


def test_national_acts_need_the_role_at_a_country_root() -> None:
    principal = Principal("p", None, frozenset(), None)
    national = Caller(principal, (Assignment(Role.AUDITOR, "VE", national=True),))
    national.require_national(Role.OPERATOR, Role.AUDITOR)
    regional = Caller(principal, (Assignment(Role.OPERATOR, "VE.01"),))
    with pytest.raises(PermissionDeniedError) as info:
        regional.require_national(Role.OPERATOR)
    assert info.value.code == "forbidden_territory"
    with pytest.raises(PermissionDeniedError) as info:
        national.require_national(Role.OPERATOR)
    assert info.value.code == "forbidden_role"
