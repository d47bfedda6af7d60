"""REST transport of role assignments: grant, list, read, revoke, and the caller's own resolution."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from comuna_identity.api.schemas import (
    CODE_PATTERN,
    MeOut,
    RevokeIn,
    RoleAssignmentIn,
    RoleAssignmentOut,
    RoleAssignmentPage,
)
from comuna_identity.domain import access
from comuna_identity.domain.access import AssignmentView, Terms
from comuna_platform.auth.fastapi import CurrentCaller, CurrentPrincipal
from comuna_platform.auth.roles import Role
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.ids import parse_id
from comuna_platform.paging import decode_page_token, encode_page_token

router = APIRouter(prefix="/v1", tags=["access"])


def assignment_out(view: AssignmentView) -> RoleAssignmentOut:
    a = view.assignment
    return RoleAssignmentOut(
        id=a.id,
        subject=a.subject,
        role=Role(a.role),
        territory_id=view.territory.id,
        territory_code=view.territory.code,
        consultation_id=a.consultation_id,
        table_code=a.table_code,
        valid_from=a.valid_from,
        valid_until=a.valid_until,
        granted_by=a.granted_by,
        granted_at=a.granted_at,
        revoked_at=a.revoked_at,
        revoked_by=a.revoked_by,
        revoke_reason=a.revoke_reason,
    )


@router.post(
    "/role-assignments",
    status_code=status.HTTP_201_CREATED,
    response_model=RoleAssignmentOut,
    summary="Grant a role in a territory (operators anywhere; officials and registrars inside theirs)",
)
async def grant_role(body: RoleAssignmentIn, caller: CurrentCaller, uow: UnitOfWorkDep) -> RoleAssignmentOut:
    terms = Terms(
        subject=body.subject,
        role=body.role,
        territory_code=body.territory_code,
        consultation_id=body.consultation_id,
        table_code=body.table_code,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
    )
    return assignment_out(await access.grant(uow, caller, terms))


@router.get(
    "/role-assignments",
    response_model=RoleAssignmentPage,
    summary="Assignments inside the territories where the caller may grant (all for operators and auditors)",
)
async def list_role_assignments(
    *,
    caller: CurrentCaller,
    uow: UnitOfWorkDep,
    subject: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    territory_code: Annotated[
        str | None, Query(max_length=64, pattern=CODE_PATTERN, description="Assignments at or under this territory")
    ] = None,
    role: Role | None = None,
    page_token: Annotated[str, Query(max_length=512, description="`next_page_token` of the previous page")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RoleAssignmentPage:
    after = decode_page_token(page_token, [uuid.UUID])
    page = await access.list_visible(
        uow,
        caller,
        subject=subject,
        role=role,
        territory_code=territory_code,
        after_id=after[0] if after else None,
        limit=limit,
    )
    return RoleAssignmentPage(
        items=[assignment_out(view) for view in page.items],
        next_page_token=encode_page_token(page.items[-1].assignment.id) if page.more else None,
    )


@router.get("/role-assignments/{assignment_id}", response_model=RoleAssignmentOut, summary="One role assignment")
async def get_role_assignment(assignment_id: str, caller: CurrentCaller, uow: UnitOfWorkDep) -> RoleAssignmentOut:
    return assignment_out(await access.get(uow, caller, parse_id(assignment_id, "assignment_id")))


@router.post(
    "/role-assignments/{assignment_id}:revoke",
    response_model=RoleAssignmentOut,
    summary="Revoke a role assignment (the same rule as granting it, on its territory)",
)
async def revoke_role_assignment(
    assignment_id: str, body: RevokeIn, caller: CurrentCaller, uow: UnitOfWorkDep
) -> RoleAssignmentOut:
    view = await access.revoke(uow, caller, parse_id(assignment_id, "assignment_id"), reason=body.reason)
    return assignment_out(view)


@router.get("/me", response_model=MeOut, summary="The caller's own assignments in force and linked resident")
async def me(principal: CurrentPrincipal, uow: UnitOfWorkDep) -> MeOut:
    resolved = await access.resolve(uow, principal.subject)
    return MeOut(
        subject=resolved.subject,
        assignments=[assignment_out(view) for view in resolved.assignments],
        resident_id=resolved.resident_id,
    )
