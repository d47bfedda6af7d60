"""gRPC transport of the results slice, called by other services with a service token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import grpc

from comuna.consultations.v1 import consultations_pb2 as pb
from comuna.consultations.v1 import consultations_pb2_grpc, events_pb2
from comuna_consultations.results import usecases
from comuna_consultations.results.messages import commune_proto, summary_proto
from comuna_platform.grpc_uow import with_unit_of_work
from comuna_platform.ids import parse_id
from comuna_platform.paging import decode_page_token, encode_page_token, page_size_of
from comuna_platform.rpc import require_service_caller
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork

# Serialized bytes of the communes of one page: far under gRPC's default 4 MB receive limit,
# whatever the number of candidates per commune (a page is cut short rather than grown).
MAX_PAGE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CertifiedPage:
    summary: events_pb2.ConsultationCertified
    results: list[events_pb2.CommuneResult]
    # Code of the last commune of this page when more follow, else None.
    next_after_code: str | None


async def certified_page(
    uow: UnitOfWork,
    consultation_id: uuid.UUID,
    *,
    after_code: str,
    page_size: int,
    now: datetime,
    max_bytes: int = MAX_PAGE_BYTES,
) -> CertifiedPage:
    """The summary and the certified communes after `after_code` (in code order), among at most
    `page_size` communes and at most `max_bytes` of them serialized (but at least one when any)."""
    found = await usecases.certified_page(uow, consultation_id, after_code=after_code, page_size=page_size, now=now)
    page: list[events_pb2.CommuneResult] = []
    size = 0
    for outcome in found.communes:
        message = commune_proto(outcome)
        size += message.ByteSize()
        if page and size > max_bytes:
            # Cut short: the next page starts after the last commune sent.
            return CertifiedPage(summary_proto(found.summary), page, page[-1].commune_code)
        page.append(message)
    return CertifiedPage(summary_proto(found.summary), page, found.next_after_code)


class ConsultationsServicer(consultations_pb2_grpc.ConsultationsServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.db = runtime.db
        # Read on each call: tests swap the runtime's clock.
        self.runtime = runtime

    @with_unit_of_work
    async def ListCertifiedResults(
        self, request: pb.ListCertifiedResultsRequest, uow: UnitOfWork
    ) -> pb.ListCertifiedResultsResponse:
        """The certification summary and one page of commune results, in commune code order."""
        require_service_caller()
        consultation_id = parse_id(request.consultation_id, "consultation_id")
        page_size = page_size_of(request.page_size, default=usecases.DEFAULT_PAGE_SIZE, maximum=usecases.MAX_PAGE_SIZE)
        after = decode_page_token(request.page_token, [str])
        page = await certified_page(
            uow,
            consultation_id,
            after_code=after[0] if after else "",
            page_size=page_size,
            now=self.runtime.clock.now(),
        )
        return pb.ListCertifiedResultsResponse(
            summary=page.summary,
            results=page.results,
            next_page_token=encode_page_token(page.next_after_code) if page.next_after_code is not None else "",
        )


def register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    consultations_pb2_grpc.add_ConsultationsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        ConsultationsServicer(runtime), server
    )
    return [pb.DESCRIPTOR.services_by_name["ConsultationsService"].full_name]
