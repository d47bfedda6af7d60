"""gRPC transport of the identity service, called by other services with a service token."""

from __future__ import annotations

from datetime import UTC, date, datetime

import grpc

from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_identity.domain import access
from comuna_identity.domain import register as territory_register
from comuna_identity.domain.roll_keys import RollSecret
from comuna_identity.grpc.rolls import RollRpcs
from comuna_identity.messages import role_assignment, territory_ref, timestamp
from comuna_platform.errors import InvalidInput
from comuna_platform.grpc_uow import with_unit_of_work
from comuna_platform.ids import parse_id
from comuna_platform.paging import decode_page_token, encode_page_token, page_size_of
from comuna_platform.rpc import require_service_caller
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork

MAX_PAGE = 1000


def day_of(as_of: str) -> date:
    """`as_of` (YYYY-MM-DD) or today (UTC) when empty; INVALID_ARGUMENT otherwise."""
    if not as_of:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(as_of)
    except ValueError:
        raise InvalidInput("as_of must be a date, YYYY-MM-DD", code="date_invalid", field="as_of") from None


class IdentityServicer(RollRpcs, identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, runtime: Runtime, roll_secret: RollSecret | None) -> None:
        self.db = runtime.db
        self._roll_secret = roll_secret

    @with_unit_of_work
    async def GetTerritory(self, request: pb.GetTerritoryRequest, uow: UnitOfWork) -> pb.GetTerritoryResponse:
        require_service_caller()
        day = day_of(request.as_of)
        if request.id:
            found = await territory_register.territory_with_ancestors(
                uow, day=day, territory_id=parse_id(request.id, "id")
            )
        else:
            found = await territory_register.territory_with_ancestors(uow, day=day, code=request.code)
        return pb.GetTerritoryResponse(
            territory=territory_ref(found.territory), ancestors=[territory_ref(a) for a in found.ancestors]
        )

    @with_unit_of_work
    async def ListCommunes(self, request: pb.ListCommunesRequest, uow: UnitOfWork) -> pb.ListCommunesResponse:
        require_service_caller()
        size = page_size_of(request.page_size, default=MAX_PAGE, maximum=MAX_PAGE)
        after = decode_page_token(request.page_token, [str])
        page = await territory_register.list_communes(
            uow,
            under_code=request.under_code,
            day=day_of(request.as_of),
            after_code=after[0] if after else "",
            limit=size,
        )
        return pb.ListCommunesResponse(
            communes=[territory_ref(t) for t in page.items],
            next_page_token=encode_page_token(page.items[-1].code) if page.more else "",
        )

    @with_unit_of_work
    async def ResolvePrincipal(
        self, request: pb.ResolvePrincipalRequest, uow: UnitOfWork
    ) -> pb.ResolvePrincipalResponse:
        require_service_caller()
        resolved = await access.resolve(uow, request.subject)
        return pb.ResolvePrincipalResponse(
            subject=resolved.subject,
            assignments=[role_assignment(view) for view in resolved.assignments],
            resident_id=str(resolved.resident_id) if resolved.resident_id else "",
            resolved_at=timestamp(resolved.resolved_at),
        )


def register(runtime: Runtime, server: grpc.aio.Server, roll_secret: RollSecret | None) -> list[str]:
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(  # type: ignore[no-untyped-call]
        IdentityServicer(runtime, roll_secret), server
    )
    return [pb.DESCRIPTOR.services_by_name["IdentityService"].full_name]
