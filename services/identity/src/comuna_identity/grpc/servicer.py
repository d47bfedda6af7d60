"""gRPC transport of the identity service, called by other services with a service token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc

from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_identity.domain import registry
from comuna_identity.domain.census import CensusHasher
from comuna_identity.storage import repository
from comuna_platform.errors import InvalidInput, NotFound
from comuna_platform.rpc import parse_id, require_service_caller
from comuna_platform.runtime import Runtime

MAX_PAGE = 1000


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, runtime: Runtime, hasher: CensusHasher, voting_age: int) -> None:
        self._runtime = runtime
        self._hasher = hasher
        self._voting_age = voting_age

    async def GetTerritory(self, request: pb.GetTerritoryRequest, context: Any) -> pb.GetTerritoryResponse:
        require_service_caller()
        async with self._runtime.db.transaction() as session:
            if request.id:
                territory = await repository.territory_by_id(session, parse_id(request.id, "id"))
            else:
                territory = await repository.territory_by_code(session, request.code)
            if territory is None:
                raise NotFound("territory does not exist", code="territory_not_found")
            ancestors = await repository.ancestors_of(session, territory)
        return pb.GetTerritoryResponse(
            territory=registry.territory_ref(territory), ancestors=[registry.territory_ref(a) for a in ancestors]
        )

    async def ListCommunes(self, request: pb.ListCommunesRequest, context: Any) -> pb.ListCommunesResponse:
        require_service_caller()
        if request.page_size < 0:
            # AIP-158: 0 means the default, negative is an error (it reached the LIMIT before).
            raise InvalidInput("page_size must not be negative", code="invalid_page_size")
        size = min(request.page_size or MAX_PAGE, MAX_PAGE)
        async with self._runtime.db.transaction() as session:
            rows = await repository.communes_under(
                session, request.under_code, after_code=request.page_token, limit=size
            )
        return pb.ListCommunesResponse(
            communes=[registry.territory_ref(t) for t in rows],
            next_page_token=rows[-1].code if len(rows) == size else "",
        )

    async def CheckEligibility(self, request: pb.CheckEligibilityRequest, context: Any) -> pb.CheckEligibilityResponse:
        require_service_caller()
        if not request.consultation_id:
            raise InvalidInput("consultation_id is required", code="invalid_id")
        day = (request.as_of.ToDatetime(tzinfo=UTC) if request.HasField("as_of") else datetime.now(UTC)).date()
        async with self._runtime.db.transaction() as session:
            result = await registry.check_eligibility(
                session,
                self._hasher,
                consultation_id=request.consultation_id,
                commune_id=parse_id(request.commune_id, "commune_id"),
                national_id=request.national_id,
                voting_day=day,
                voting_age=self._voting_age,
            )
        return pb.CheckEligibilityResponse(
            eligible=result.eligible,
            reason=result.reason,  # type: ignore[arg-type]
            voter_ref=result.voter_ref,
        )


def register(runtime: Runtime, server: grpc.aio.Server, hasher: CensusHasher, voting_age: int) -> list[str]:
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(  # type: ignore[no-untyped-call]
        IdentityServicer(runtime, hasher, voting_age), server
    )
    return [pb.DESCRIPTOR.services_by_name["IdentityService"].full_name]
