"""REST transport of the voter roll: its public counts and digest, and "can I vote?"."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Query, Request

from comuna_identity.api.lookups import RATE_LIMITED
from comuna_identity.api.roll_schemas import (
    CommuneCountOut,
    CouncilCountOut,
    MyRollOut,
    PlaceOut,
    PollingPlaceOut,
    RollOut,
)
from comuna_identity.domain import roll
from comuna_identity.domain.roll_keys import RollSecret
from comuna_identity.vocabulary import RollStatus, RollTerritoryKind
from comuna_platform.auth.fastapi import CurrentPrincipal
from comuna_platform.errors import Unavailable
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.rate_limit import DocumentLookupQuota

router = APIRouter(prefix="/v1", tags=["voter roll"])

POLLING_NOTE = "Voting centres are not defined yet: you vote at a table of your communal council."


def roll_secret_of(request: Request) -> RollSecret:
    secret: RollSecret | None = request.app.state.roll_secret
    if secret is None:
        raise Unavailable("identity has no roll secret configured", code="roll_secret_missing")
    return secret


@router.get(
    "/rolls/{consultation_id}",
    response_model=RollOut,
    summary="A consultation's voter roll: counts and digest (public)",
)
async def get_roll(consultation_id: uuid.UUID, uow: UnitOfWorkDep) -> RollOut:
    found = await roll.summary(uow, consultation_id)
    councils: dict[uuid.UUID, list[CouncilCountOut]] = defaultdict(list)
    communes: list[tuple[uuid.UUID, int]] = []
    if found.status == RollStatus.FROZEN:
        for count in await roll.counts(uow, consultation_id):
            if count.kind == RollTerritoryKind.COUNCIL:
                councils[count.commune_id].append(CouncilCountOut(council_id=count.territory_id, voters=count.voters))
            else:
                communes.append((count.territory_id, count.voters))
    return RollOut(
        consultation_id=found.consultation_id,
        status=RollStatus(found.status),
        cutoff=found.cutoff,
        voting_day=found.voting_day,
        entry_count=found.entry_count,
        digest=found.digest.hex() if found.digest else None,
        frozen_at=found.frozen_at,
        communes=[
            CommuneCountOut(commune_id=commune, voters=voters, councils=councils.get(commune, []))
            for commune, voters in communes
        ],
    )


@router.get(
    "/me/roll",
    response_model=MyRollOut,
    summary="Can I vote? The signed-in resident's own roll status, commune and polling place",
    responses=RATE_LIMITED,
)
async def my_roll(
    consultation_id: Annotated[uuid.UUID, Query()],
    principal: CurrentPrincipal,
    quota: DocumentLookupQuota,
    uow: UnitOfWorkDep,
    request: Request,
) -> MyRollOut:
    # No parameter names a person: the answer is always about the token's own subject.
    mine = await roll.my_roll(uow, roll_secret_of(request), principal.subject, consultation_id)

    def place(p: roll.Place | None) -> PlaceOut | None:
        return PlaceOut(id=p.id, code=p.code, name=p.name) if p is not None else None

    council = place(mine.council)
    return MyRollOut(
        consultation_id=consultation_id,
        on_roll=mine.on_roll,
        cutoff=mine.roll.cutoff,
        voting_day=mine.roll.voting_day,
        commune=place(mine.commune),
        council=council,
        polling_place=PollingPlaceOut(kind="communal_council", place=council, note=POLLING_NOTE) if council else None,
    )
