"""One client of identity per runtime: the access resolver, the territory lineages and
consultations' identity client all call identity over one channel (one token source), opened
once and closed once with the runtime. Real identity (PostgreSQL, NATS, gRPC), real tokens."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

import comuna_consultations
from comuna_consultations.service import SPEC as CONSULTATIONS
from comuna_consultations.settings import Settings as ConsultationsSettings
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform import peers
from comuna_platform.auth.principal import Principal
from comuna_platform.auth.roles import Role
from tests.support.identity import running_identity
from tests.support.issuer import TestIssuer
from tests.support.service import fresh_database, running_service

pytestmark = pytest.mark.asyncio

MIGRATIONS = Path(comuna_consultations.__file__).parent / "migrations"


async def test_every_client_of_identity_shares_the_runtimes_one_channel(
    embedded_postgres: EmbeddedPostgres,
    embedded_nats: EmbeddedNats,
    issuer: TestIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = []
    real_client_channel = peers.client_channel

    def counted(*args: object, **kwargs: object) -> object:
        channel = real_client_channel(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(channel)
        return channel

    monkeypatch.setattr(peers, "client_channel", counted)
    suffix = uuid.uuid4().hex[:8]
    async with running_identity(embedded_postgres, embedded_nats, issuer, f"peer_{suffix}") as identity:
        await identity.grant("peer-operator", Role.OPERATOR, "VE")
        async with running_service(
            CONSULTATIONS,
            ConsultationsSettings,
            database_url=fresh_database(embedded_postgres, f"consultations_peer_{suffix}", MIGRATIONS),
            nats_url=embedded_nats.url,
            issuer=issuer,
            identity_grpc_target=identity.grpc_target,
            workers=False,
        ) as service:
            state = service.app.state
            peer = service.runtime.identity()
            assert service.runtime.identity() is peer  # built once
            assert len(opened) == 1 and opened[0] is peer.channel
            assert state.access_resolver.channel is peer.channel
            assert state.territory_lineages.channel is peer.channel
            assert state.identity.channel is peer.channel
            assert service.runtime.closers.count(peer.close) == 1  # closed once, by the runtime
            # Both answer over it, with the service's one token source.
            principal = Principal("peer-operator", None, frozenset(), None)
            resolution = await state.access_resolver.resolve(principal)
            assert [(a.role, a.territory_code) for a in resolution.assignments] == [(Role.OPERATOR, "VE")]
            assert (await state.territory_lineages.of("VE.01.01.C1")).codes == (
                "VE",
                "VE.01",
                "VE.01.01",
                "VE.01.01.C1",
            )
            assert len(opened) == 1
        # Closed with the runtime: a call on it now fails at once instead of reaching identity.
        with pytest.raises(grpc.aio.UsageError, match="Channel is closed"):
            await peer.channel.unary_unary("/grpc.health.v1.Health/Check")(b"")
