"""gRPC transport of the consultations service, called by other services with a service token."""

from __future__ import annotations

import uuid
from typing import Any

import grpc

from comuna.consultations.v1 import consultations_pb2 as pb
from comuna.consultations.v1 import consultations_pb2_grpc, events_pb2
from comuna_consultations.domain.results import load_certified, to_proto
from comuna_platform.auth.grpc import current_principal
from comuna_platform.errors import Forbidden, InvalidInput
from comuna_platform.runtime import Runtime


def _require_service() -> None:
    if not current_principal().has_role("service"):
        raise Forbidden("only services may call consultations over gRPC", code="forbidden_role")


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidInput(f"{field} is not a valid id", code="invalid_id") from exc


class ConsultationsServicer(consultations_pb2_grpc.ConsultationsServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def GetCertifiedResults(
        self, request: pb.GetCertifiedResultsRequest, context: Any
    ) -> events_pb2.ConsultationCertified:
        """The same message as the `consultations.consultation.certified` event."""
        _require_service()
        consultation_id = _uuid(request.consultation_id, "consultation_id")
        async with self._runtime.db.transaction() as session:
            certified = await load_certified(session, consultation_id)
        return to_proto(certified)


def register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    consultations_pb2_grpc.add_ConsultationsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        ConsultationsServicer(runtime), server
    )
    return [pb.DESCRIPTOR.services_by_name["ConsultationsService"].full_name]
