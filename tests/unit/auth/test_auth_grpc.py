"""gRPC auth against a real grpc.aio server on a free port: health stays public, everything
else needs a valid bearer token, and the caller is visible to handlers via the ContextVar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
import pytest_asyncio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from comuna_platform.auth import TokenVerifier
from comuna_platform.auth.allow_list import AllowList
from comuna_platform.auth.grpc import (
    AuthInterceptor,
    bearer_token_interceptors,
    current_principal,
    optional_principal,
)
from comuna_platform.auth.principal import Principal
from tests.unit.auth.comuna_auth_testkit import KeyMaterial, claims, sign

SERVICE = "comuna.test.v1.Probe"


async def whoami(request: bytes, context: Any) -> bytes:
    return current_principal().subject.encode()


async def count(request: bytes, context: Any) -> AsyncIterator[bytes]:
    principal = current_principal()
    for i in range(int(request)):
        yield f"{principal.username}:{i}".encode()


async def public_probe(request: bytes, context: Any) -> bytes:
    return b"anonymous" if optional_principal() is None else b"LEAKED"


class LetEveryoneIn(AllowList):
    def check(self, method: str, principal: Principal) -> None:
        return None


@dataclass
class Server:
    target: str
    server: Any


@pytest_asyncio.fixture
async def server(verifier: TokenVerifier) -> AsyncIterator[Server]:
    # These tests are about authentication: the probe service is not in the contracts, so the
    # allow-list (tests/platform/test_grpc_allow_list.py) is replaced by one that lets anyone in.
    interceptor = AuthInterceptor(verifier, public_methods={f"/{SERVICE}/Public"}, allow_list=LetEveryoneIn())
    srv = grpc.aio.server(interceptors=[interceptor])
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), srv)
    srv.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Whoami": grpc.unary_unary_rpc_method_handler(whoami),
                    "Count": grpc.unary_stream_rpc_method_handler(count),
                    "Public": grpc.unary_unary_rpc_method_handler(public_probe),
                },
            )
        ]
    )
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    try:
        yield Server(f"127.0.0.1:{port}", srv)
    finally:
        await srv.stop(grace=None)


def metadata_for(key: KeyMaterial, **overrides: object) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {sign(key, claims(**overrides))}"),)


async def call_status(call: Any) -> tuple[Any, str | None]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details()


@pytest.mark.asyncio
async def test_health_is_public(server: Server) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.asyncio
async def test_protected_call_without_token_is_unauthenticated(server: Server) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        whoami_call: Any = channel.unary_unary(f"/{SERVICE}/Whoami")
        assert await call_status(whoami_call(b"")) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "token_missing",
        )
        unknown: Any = channel.unary_unary(f"/{SERVICE}/DoesNotExist")
        assert (await call_status(unknown(b"")))[0] == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.asyncio
async def test_protected_call_with_bad_token(server: Server, key_a: KeyMaterial) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        whoami_call: Any = channel.unary_unary(f"/{SERVICE}/Whoami")
        expired = metadata_for(key_a, exp=1_000)
        assert await call_status(whoami_call(b"", metadata=expired)) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "token_expired",
        )
        garbage = (("authorization", "Bearer nonsense"),)
        assert (await call_status(whoami_call(b"", metadata=garbage)))[1] == "token_invalid"


@pytest.mark.asyncio
async def test_protected_calls_with_token_see_the_principal(server: Server, key_a: KeyMaterial) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        whoami_call: Any = channel.unary_unary(f"/{SERVICE}/Whoami")
        assert await whoami_call(b"", metadata=metadata_for(key_a, sub="u-42")) == b"u-42"
        count_call: Any = channel.unary_stream(f"/{SERVICE}/Count")
        replies = [r async for r in count_call(b"3", metadata=metadata_for(key_a))]
        assert replies == [b"alice:0", b"alice:1", b"alice:2"]
        # The next public call on the same channel must not see the previous caller.
        public_call: Any = channel.unary_unary(f"/{SERVICE}/Public")
        assert await public_call(b"") == b"anonymous"


@pytest.mark.asyncio
async def test_streaming_call_without_token_is_unauthenticated(server: Server) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        count_call: Any = channel.unary_stream(f"/{SERVICE}/Count")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            _ = [r async for r in count_call(b"3")]
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


@dataclass
class StaticTokens:
    value: str
    calls: int = 0

    async def token(self) -> str:
        self.calls += 1
        return self.value


@pytest.mark.asyncio
async def test_client_interceptor_attaches_token(server: Server, key_a: KeyMaterial) -> None:
    tokens = StaticTokens(sign(key_a, claims(sub="svc-1")))
    interceptors = bearer_token_interceptors(tokens)
    async with grpc.aio.insecure_channel(server.target, interceptors=interceptors) as channel:
        whoami_call: Any = channel.unary_unary(f"/{SERVICE}/Whoami")
        # A caller-supplied authorization entry is replaced, never duplicated.
        stale = (("authorization", "Bearer stale"), ("x-request-id", "r1"))
        assert await whoami_call(b"", metadata=stale) == b"svc-1"
        count_call: Any = channel.unary_stream(f"/{SERVICE}/Count")
        assert [r async for r in count_call(b"1")] == [b"alice:0"]
    assert tokens.calls == 2
