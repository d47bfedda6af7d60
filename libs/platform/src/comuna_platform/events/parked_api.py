"""REST endpoints over the parked messages of the service (included by every service):
national operators read and replay them, national auditors read them."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import current_caller
from comuna_platform.auth.roles import Role
from comuna_platform.events.parked import ParkedMessages

# Ids are PostgreSQL bigints: anything larger is refused as a 422, not sent to the database.
MAX_ID = 2**63 - 1


async def _reader(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    # Parked messages concern the whole service, no one territory: the role must be nationwide.
    caller.require_national(Role.OPERATOR, Role.AUDITOR)
    return caller


async def _operator(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    caller.require_national(Role.OPERATOR)
    return caller


router = APIRouter(prefix="/v1", tags=["operations"])


class ParkedSummary(BaseModel):
    id: int
    consumer: str
    stream: str
    subject: str
    stream_seq: int
    event_id: str | None
    event_type: str | None
    reason: str
    error: str
    deliveries: int
    parked_at: str
    replayed_at: str | None


class ParkedDetail(ParkedSummary):
    headers: dict[str, str]
    payload_base64: str


class ParkedPage(BaseModel):
    items: list[ParkedSummary]
    # Pass as `after` for the next page; null on the last page.
    next_after: int | None


class ReplayOutcome(BaseModel):
    id: int
    # applied | duplicate (its event had taken effect already) | already_replayed
    outcome: str


def _parked(request: Request) -> ParkedMessages:
    return cast(ParkedMessages, request.app.state.parked_messages)


ParkedId = Annotated[int, Path(ge=1, le=MAX_ID, description="Id of the parked message")]


@router.get(
    "/parked-messages",
    summary="Parked event messages, oldest first (operators, auditors)",
    dependencies=[Depends(_reader)],
)
async def list_parked_messages(
    request: Request,
    consumer: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")] = None,
    include_replayed: bool = False,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ParkedPage:
    rows = await _parked(request).list_messages(
        consumer=consumer, include_replayed=include_replayed, after=after, limit=limit
    )
    items: list[Any] = [ParkedSummary(**row.summary()) for row in rows]
    return ParkedPage(items=items, next_after=rows[-1].id if len(rows) == limit else None)


@router.get(
    "/parked-messages/{parked_id}",
    summary="One parked message with its headers and payload (operators, auditors)",
    dependencies=[Depends(_reader)],
)
async def get_parked_message(request: Request, parked_id: ParkedId) -> ParkedDetail:
    return ParkedDetail(**(await _parked(request).get(parked_id)).detail())


@router.post(
    "/parked-messages/{parked_id}:replay",
    summary="Apply a parked message through its consumer's inbox, exactly once (operators)",
    dependencies=[Depends(_operator)],
)
async def replay_parked_message(request: Request, parked_id: ParkedId) -> ReplayOutcome:
    result = await _parked(request).replay(parked_id)
    return ReplayOutcome(id=result.id, outcome=result.outcome)
