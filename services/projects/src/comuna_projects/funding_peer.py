"""Projects' client of funding's gRPC API: what funding's ledger says was disbursed to a
project's allocation (`FundingService.GetAllocation`), for the expenditure check.

It sends the service's own client-credentials token (the runtime's token source, the one its
client of identity uses) on a channel of its own, closed with the runtime.
"""

from __future__ import annotations

import logging
import uuid

import grpc

from comuna.funding.v1 import funding_pb2, funding_pb2_grpc
from comuna_platform.auth.errors import TokenSourceError
from comuna_platform.auth.grpc import bearer_token_interceptors
from comuna_platform.errors import Unavailable
from comuna_platform.peers import ServiceTokens
from comuna_platform.rpc import client_channel

log = logging.getLogger(__name__)

_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class GrpcFundingLedger:
    def __init__(self, target: str, tokens: ServiceTokens, *, timeout: float) -> None:
        self._tokens = tokens
        self._timeout = timeout
        self.channel = client_channel(target, bearer_token_interceptors(tokens))
        self._stub = funding_pb2_grpc.FundingServiceStub(self.channel)  # type: ignore[no-untyped-call]

    async def disbursed_minor(self, allocation_id: uuid.UUID) -> int:
        request = funding_pb2.GetAllocationRequest(allocation_id=str(allocation_id))
        try:
            allocation = await self._stub.GetAllocation(request, timeout=self._timeout)
        except TokenSourceError as exc:
            log.error("no service token for funding: %s", exc)
            raise Unavailable("could not obtain a service token", code="service_token_unavailable") from exc
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                self._tokens.invalidate()
            if exc.code() not in _TRANSIENT:
                log.error("funding GetAllocation failed: %s %s", exc.code(), exc.details())
            raise Unavailable(
                "funding could not say what was disbursed to the project; try again", code="funding_unavailable"
            ) from exc
        return int(allocation.disbursed.amount_minor)

    async def close(self) -> None:
        await self.channel.close()
