"""gRPC transport of the consultations service, called by other services with a service token."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import grpc

from comuna.consultations.v1 import consultations_pb2 as pb
from comuna.consultations.v1 import consultations_pb2_grpc
from comuna_consultations.domain.results import certified_page, page_size_of
from comuna_platform.errors import InvalidInput
from comuna_platform.rpc import parse_id, require_service_caller
from comuna_platform.runtime import Runtime

# Page tokens are opaque to callers: a version tag and the last commune code of the page.
_CURSOR_TAG = "c1:"


def encode_page_token(after_code: str) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_TAG}{after_code}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    """The commune code to continue after; "" for the first page."""
    if not token:
        return ""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("page_token is not one this service issued", code="invalid_page_token") from exc
    if not text.startswith(_CURSOR_TAG) or len(text) == len(_CURSOR_TAG):
        raise InvalidInput("page_token is not one this service issued", code="invalid_page_token")
    return text[len(_CURSOR_TAG) :]


class ConsultationsServicer(consultations_pb2_grpc.ConsultationsServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def ListCertifiedResults(
        self, request: pb.ListCertifiedResultsRequest, context: Any
    ) -> pb.ListCertifiedResultsResponse:
        """The certification summary and one page of commune results, in commune code order."""
        require_service_caller()
        consultation_id = parse_id(request.consultation_id, "consultation_id")
        page_size = page_size_of(request.page_size)
        after_code = decode_page_token(request.page_token)
        async with self._runtime.db.transaction() as session:
            page = await certified_page(session, consultation_id, after_code=after_code, page_size=page_size)
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
