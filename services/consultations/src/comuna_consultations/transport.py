"""REST plumbing the consultations slices share: roles, the per-process clients and caches
reached from a route, the strict request-body base and the page-token parameter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from comuna_consultations.clients.identity import IdentityClient
from comuna_consultations.domain.consultations import StatusWatcher
from comuna_consultations.storage.models import Consultation
from comuna_consultations.vocabulary import ConsultationStatus
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import require_assignment
from comuna_platform.auth.roles import Role

# The role is checked here; where it is held, against the consultation's own data, in the use case.
Operator = Annotated[Caller, require_assignment(Role.OPERATOR)]
Spokesperson = Annotated[Caller, require_assignment(Role.SPOKESPERSON, Role.OPERATOR)]
PageToken = Annotated[str, Query(max_length=512, description="`next_page_token` of the previous page")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ConsultationOut(BaseModel):
    id: uuid.UUID
    code: str
    title: str
    status: ConsultationStatus
    assemblies_open_at: datetime
    voting_opens_at: datetime
    voting_closes_at: datetime
    commune_count: int
    voting_started_at: datetime | None
    closed_at: datetime | None
    certified_at: datetime | None
    # RESULTS: the declared tie-break and the hex seed of its draw, published from opening (docs/results.md).
    tie_break: list[str]
    draw_seed: str


def consultation_out(c: Consultation) -> ConsultationOut:
    return ConsultationOut(
        id=c.id,
        code=c.code,
        title=c.title,
        status=ConsultationStatus(c.status),
        assemblies_open_at=c.assemblies_open_at,
        voting_opens_at=c.voting_opens_at,
        voting_closes_at=c.voting_closes_at,
        commune_count=c.commune_count,
        voting_started_at=c.voting_started_at,
        closed_at=c.closed_at,
        certified_at=c.certified_at,
        tie_break=list(c.tie_break),
        draw_seed=bytes(c.draw_seed).hex(),
    )


async def identity_of(request: Request) -> IdentityClient:
    client: IdentityClient = request.app.state.identity
    return client


async def status_watcher_of(request: Request) -> StatusWatcher:
    # The voting slice's snapshot cache (see `service.on_startup`), seen only as a watcher here.
    watcher: StatusWatcher = request.app.state.voting_snapshots
    return watcher


IdentityDep = Annotated[IdentityClient, Depends(identity_of)]
WatcherDep = Annotated[StatusWatcher, Depends(status_watcher_of)]
