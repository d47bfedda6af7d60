"""Where other services learn where a territory sits: identity's GetTerritory as of a day, and the
platform's `GrpcTerritoryLineages` over it (cached, dropped on `identity.territory.*`, 503 when
identity is unreachable), across a move, against a real gRPC server and NATS."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_identity.service import SPEC
from comuna_platform.auth.access import Lineage
from comuna_platform.auth.grpc import bearer_token_interceptors
from comuna_platform.auth.lineages import GrpcTerritoryLineages
from comuna_platform.errors import NotFound, Unavailable
from comuna_platform.rpc import client_channel, error_code_of
from tests.identity.authority import REGISTRAR, person, seed_staff
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

TODAY = datetime.now(UTC).date()


class IssuerTokens:
    def __init__(self, issuer: TestIssuer) -> None:
        self._issuer = issuer

    async def token(self) -> str:
        return self._issuer.token(roles=["service"], client_id="svc-consultations")

    def invalidate(self) -> None:
        pass


async def small_tree(identity: RunningService, issuer: TestIssuer) -> None:
    await seed_staff(identity)
    headers = person(issuer, REGISTRAR)
    for code, kind, parent in [
        ("LN-ST", "state", "VE"),
        ("LN-MU", "municipality", "LN-ST"),
        ("LN-PA", "parish", "LN-MU"),
        ("LN-C1", "commune", "LN-PA"),
        ("LN-C2", "commune", "LN-MU"),
        ("LN-CC", "communal_council", "LN-C1"),
    ]:
        body = {"code": code, "name": code, "kind": kind, "parent_code": parent, "valid_from": "2020-01-01"}
        response = await identity.client.post("/v1/territories", json=body, headers=headers)
        assert response.status_code in (201, 409), response.text


async def test_get_territory_as_of_follows_the_links_in_force(identity: RunningService, issuer: TestIssuer) -> None:
    await small_tree(identity, issuer)
    moved_on = TODAY - timedelta(days=3)
    response = await identity.client.post(
        "/v1/territories/LN-CC:change",
        json={"valid_from": moved_on.isoformat(), "parent_code": "LN-C2"},
        headers=person(issuer, REGISTRAR),
    )
    assert response.status_code == 200, response.text
    async with grpc_server(SPEC, identity) as target:
        channel = client_channel(target, bearer_token_interceptors(IssuerTokens(issuer)))
        stub = identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        eve = (moved_on - timedelta(days=1)).isoformat()
        before = await stub.GetTerritory(pb.GetTerritoryRequest(code="LN-CC", as_of=eve))
        after = await stub.GetTerritory(pb.GetTerritoryRequest(code="LN-CC"))
        assert [a.code for a in before.ancestors] == ["VE", "LN-ST", "LN-MU", "LN-PA", "LN-C1"]
        assert [a.code for a in after.ancestors] == ["VE", "LN-ST", "LN-MU", "LN-C2"]
        communes = await stub.ListCommunes(pb.ListCommunesRequest(under_code="LN-PA", as_of=eve))
        assert [c.code for c in communes.communes] == ["LN-C1"]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetTerritory(pb.GetTerritoryRequest(code="LN-CC", as_of="2026-02-30"))
        assert (refused.value.code(), error_code_of(refused.value)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "date_invalid",
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetTerritory(pb.GetTerritoryRequest(code="LN-CC", as_of="2019-12-31"))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND

        lineages = GrpcTerritoryLineages(channel, cache_seconds=600)
        assert await lineages.of("LN-CC") == Lineage(("VE", "LN-ST", "LN-MU", "LN-C2", "LN-CC"))
        assert (await lineages.of("LN-CC", day=moved_on - timedelta(days=1))).codes[-2] == "LN-C1"
        with pytest.raises(NotFound):
            await lineages.of("NO-SUCH-UNIT")

        # Cached, until a territory event says the register changed.
        stop = asyncio.Event()
        watcher = asyncio.create_task(lineages.watch_invalidations(identity.runtime.nats, stop))
        try:
            await _until(lambda: lineages.listening)
            await lineages.of("LN-CC")
            assert len(lineages) == 1
            response = await identity.client.post(
                "/v1/territories/LN-CC:change",
                json={"valid_from": TODAY.isoformat(), "parent_code": "LN-C1"},
                headers=person(issuer, REGISTRAR),
            )
            assert response.status_code == 200, response.text
            await _until(lambda: len(lineages) == 0)
            assert (await lineages.of("LN-CC")).codes[-2] == "LN-C1"
        finally:
            stop.set()
            await watcher
        await channel.close()


async def test_identity_unreachable_is_503_never_allowed() -> None:
    lineages = GrpcTerritoryLineages(grpc.aio.insecure_channel("127.0.0.1:9"), timeout=2.0)
    with pytest.raises(Unavailable) as info:
        await lineages.of("VE")
    assert (info.value.status, info.value.code) == (503, "identity_unavailable")
    await lineages.channel.close()


async def test_a_recent_lineage_stands_in_while_identity_is_down_until_its_bound_or_a_change(
    identity: RunningService, issuer: TestIssuer
) -> None:
    """Stale-if-error: table officers keep voting through an identity restart, but no longer
    than `stale_seconds`, and never past an invalidation (a change identity announced)."""
    await small_tree(identity, issuer)
    now = [1000.0]
    async with grpc_server(SPEC, identity) as target:
        channel = client_channel(target, bearer_token_interceptors(IssuerTokens(issuer)))
        lineages = GrpcTerritoryLineages(channel, cache_seconds=30, stale_seconds=300, clock=lambda: now[0])
        fresh = await lineages.of("LN-CC")
        await lineages.of("LN-C1")
    # Identity is gone now: its server stopped with the block above.
    now[0] += 31
    assert await lineages.of("LN-CC") == fresh
    now[0] += 0.5  # within the retry pause: served without a call
    assert await lineages.of("LN-CC") == fresh
    now[0] += 300
    with pytest.raises(Unavailable):
        await lineages.of("LN-CC")  # past its bound
    lineages.clear()  # what an identity.territory.* event does
    now[0] = 1031.0
    with pytest.raises(Unavailable):
        await lineages.of("LN-C1")
    await channel.close()


async def _until(condition: object, deadline: float = 10.0) -> None:
    """Poll `condition()` until true or the deadline passes (the relay publishes asynchronously)."""
    assert callable(condition)
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        await asyncio.sleep(0.02)
