"""gRPC transport of the funding service, called by other services with a service token."""

from __future__ import annotations

import grpc

from comuna.funding.v1 import funding_pb2 as pb
from comuna.funding.v1 import funding_pb2_grpc
from comuna_funding.domain import ledger, queries
from comuna_funding.messages import allocation_message
from comuna_platform.grpc_uow import with_unit_of_work
from comuna_platform.ids import parse_id
from comuna_platform.rpc import require_service_caller
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork


class FundingServicer(funding_pb2_grpc.FundingServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.db = runtime.db

    @with_unit_of_work
    async def GetAllocation(self, request: pb.GetAllocationRequest, uow: UnitOfWork) -> pb.Allocation:
        require_service_caller()
        view = await queries.allocation(uow, parse_id(request.allocation_id, "allocation_id"))
        return allocation_message(view)

    @with_unit_of_work
    async def GetLedgerTotals(self, request: pb.GetLedgerTotalsRequest, uow: UnitOfWork) -> pb.GetLedgerTotalsResponse:
        require_service_caller()
        totals = await ledger.ledger_totals(uow.session)
        return pb.GetLedgerTotalsResponse(
            totals=[
                pb.LedgerTotal(
                    currency=t.currency,
                    debits_minor=t.debits_minor,
                    credits_minor=t.credits_minor,
                    transfers=t.transfers,
                )
                for t in totals
            ]
        )


def register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    funding_pb2_grpc.add_FundingServiceServicer_to_server(  # type: ignore[no-untyped-call]
        FundingServicer(runtime), server
    )
    return [pb.DESCRIPTOR.services_by_name["FundingService"].full_name]
