"""gRPC transport of the funding service, called by other services with a service token."""

from __future__ import annotations

from typing import Any

import grpc

from comuna.common.v1 import money_pb2
from comuna.funding.v1 import funding_pb2 as pb
from comuna.funding.v1 import funding_pb2_grpc
from comuna_funding.domain import ledger
from comuna_funding.storage import ledger_store, repository
from comuna_platform.errors import NotFound
from comuna_platform.rpc import parse_id, require_service_caller
from comuna_platform.runtime import Runtime


class FundingServicer(funding_pb2_grpc.FundingServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def GetAllocation(self, request: pb.GetAllocationRequest, context: Any) -> pb.Allocation:
        require_service_caller()
        allocation_id = parse_id(request.allocation_id, "allocation_id")
        async with self._runtime.db.transaction() as session:
            allocation = await repository.allocation_by_id(session, allocation_id)
            if allocation is None:
                raise NotFound(f"allocation {allocation_id} does not exist", code="allocation_not_found")
            account = await ledger_store.account_by_id(session, allocation.account_id)
        assert account is not None  # foreign key
        return pb.Allocation(
            allocation_id=str(allocation.id),
            consultation_id=str(allocation.consultation_id),
            commune_id=str(allocation.commune_id),
            candidate_id=str(allocation.candidate_id),
            title=allocation.title,
            funding_source=allocation.funding_source,
            amount=money_pb2.Money(amount_minor=allocation.amount_minor, currency=allocation.currency),
            disbursed=money_pb2.Money(amount_minor=account.debits_posted, currency=allocation.currency),
        )

    async def GetLedgerTotals(self, request: pb.GetLedgerTotalsRequest, context: Any) -> pb.GetLedgerTotalsResponse:
        require_service_caller()
        async with self._runtime.db.transaction() as session:
            totals = await ledger.ledger_totals(session)
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
