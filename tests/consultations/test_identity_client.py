"""The identity client's bound on in-flight calls and its error mapping, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from comuna_consultations.clients.identity import IdentityClient
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, Unavailable

pytestmark = pytest.mark.asyncio


class FakeRpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="nope")


async def test_calls_beyond_the_bound_wait_then_give_up_as_unavailable() -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:
        client = IdentityClient(channel, timeout=0.2, max_in_flight=2)
        release = asyncio.Event()
        in_flight = 0
        peak = 0

        async def slow(request: Any, timeout: float) -> str:  # noqa: ASYNC109 - a gRPC stub signature
            # Holds its slot until released, whatever its own deadline: the third call's wait for
            # a slot is then the only timer that can end, however loaded the machine is.
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await release.wait()
                return "ok"
            finally:
                in_flight -= 1

        async def third() -> str:
            try:
                result: str = await client._call("X", slow, None)
                return result
            finally:
                release.set()

        results = await asyncio.gather(
            client._call("X", slow, None), client._call("X", slow, None), third(), return_exceptions=True
        )
        assert peak == 2
        busy = [r for r in results if isinstance(r, Unavailable)]
        assert len(busy) == 1 and busy[0].code == "identity_busy"


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (grpc.StatusCode.UNAVAILABLE, Unavailable, "identity_unavailable"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, Unavailable, "identity_unavailable"),
        (grpc.StatusCode.NOT_FOUND, NotFound, "not_found"),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidInput, "invalid_input"),
        # FreezeRoll with another cut-off; StreamRoll of a roll not frozen yet.
        (grpc.StatusCode.ALREADY_EXISTS, Conflict, "conflict"),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition, "failed_precondition"),
        (grpc.StatusCode.PERMISSION_DENIED, Unavailable, "identity_error"),
        (grpc.StatusCode.INTERNAL, Unavailable, "identity_error"),
    ],
)
async def test_grpc_errors_map_to_platform_errors(status: grpc.StatusCode, error: type[Exception], code: str) -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:
        client = IdentityClient(channel, timeout=1.0)

        async def failing(request: Any, timeout: float) -> None:  # noqa: ASYNC109
            raise FakeRpcError(status)

        with pytest.raises(error) as info:
            await client._call("X", failing, None)
        assert getattr(info.value, "code", None) == code
