"""REST transport of enrolment: link a resident's account in person, hand out a one-time code,
redeem it. No document number in any answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from comuna_identity.api.lookups import RATE_LIMITED, counted_lookup
from comuna_identity.api.routes import census_of
from comuna_identity.api.schemas import EnrolmentCodeOut, LinkedOut, LinkIn, NationalIdIn, RedeemIn
from comuna_identity.domain import enrolment
from comuna_platform.auth.access import Caller
from comuna_platform.auth.errors import PermissionDeniedError
from comuna_platform.auth.fastapi import CurrentPrincipal, require_assignment
from comuna_platform.auth.roles import SERVICE_ROLE
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.http.problems import problem_response
from comuna_platform.rate_limit import DocumentLookupQuota

router = APIRouter(prefix="/v1", tags=["enrolment"])

Enroller = Annotated[Caller, require_assignment(*enrolment.ENROLLERS)]
# Linking and issuing a code: a resident outside the registrar's scope is "not found", as an
# unknown document is (`enrolment.ResidentOutOfReach`): the request names no territory to refuse.
LOOKUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "`resident_not_found`: no resident with this document in a council the caller covers "
        "(not in the census, or living elsewhere: not said which)"
    },
    **RATE_LIMITED,
}


@router.post(
    "/residents:link",
    status_code=status.HTTP_201_CREATED,
    response_model=LinkedOut,
    summary="Link a resident's account in person (a registrar covering the resident's council)",
    responses=LOOKUP_RESPONSES,
)
async def link_resident(
    body: LinkIn, caller: Enroller, quota: DocumentLookupQuota, uow: UnitOfWorkDep, request: Request
) -> LinkedOut:
    with counted_lookup(quota, "resident_not_found"):
        linked = await enrolment.link_in_person(
            uow, caller, census_of(request), national_id=body.national_id, subject=body.subject, now=datetime.now(UTC)
        )
    return LinkedOut(resident_id=linked.resident_id, subject=linked.subject)


@router.post(
    "/residents:enrolment-code",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrolmentCodeOut,
    summary="Issue a one-time enrolment code (shown once; a new one replaces the live one)",
    responses=LOOKUP_RESPONSES,
)
async def issue_enrolment_code(
    body: NationalIdIn, caller: Enroller, quota: DocumentLookupQuota, uow: UnitOfWorkDep, request: Request
) -> EnrolmentCodeOut:
    with counted_lookup(quota, "resident_not_found"):
        issued = await enrolment.issue_code(
            uow, caller, census_of(request), national_id=body.national_id, now=datetime.now(UTC)
        )
    return EnrolmentCodeOut(resident_id=issued.resident_id, code=issued.code, expires_at=issued.expires_at)


@router.post(
    "/enrolment:redeem",
    response_model=LinkedOut,
    summary="Redeem an enrolment code with one's document number: links the caller's account",
    responses={
        403: {"description": "code or document wrong, code expired, used or burnt (not said which)"},
        **RATE_LIMITED,
    },
)
async def redeem_enrolment_code(
    body: RedeemIn, principal: CurrentPrincipal, quota: DocumentLookupQuota, uow: UnitOfWorkDep, request: Request
) -> LinkedOut | JSONResponse:
    if principal.has_role(SERVICE_ROLE):
        # A service account is not a person: it has no census record to be linked to.
        raise PermissionDeniedError("forbidden_role", "a service account cannot enrol")
    outcome = await enrolment.redeem(
        uow,
        census_of(request),
        subject=principal.subject,
        code=body.code,
        national_id=body.national_id,
        now=datetime.now(UTC),
    )
    if isinstance(outcome, enrolment.Linked):
        return LinkedOut(resident_id=outcome.resident_id, subject=outcome.subject)
    # Returned, not raised: the failed attempt is counted in this unit of work, which commits.
    quota.failed(outcome.code)
    return problem_response(
        request, status=outcome.status, code=outcome.code, title=outcome.title, detail=outcome.detail
    )
