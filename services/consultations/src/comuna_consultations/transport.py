"""REST plumbing the consultations slices share: roles, the per-process clients and caches
reached from a route, the strict request-body base and the page-token parameter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from comuna_consultations.clients.identity import IdentityClient
from comuna_consultations.domain.consultations import StatusWatcher
from comuna_consultations.domain.phases import Phase
from comuna_consultations.domain.pseudonyms import Pseudonyms
from comuna_consultations.domain.schedules import schedule_from
from comuna_consultations.storage.models import Consultation
from comuna_consultations.storage.record import Record
from comuna_consultations.vocabulary import ConsultationStatus
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import require_assignment
from comuna_platform.auth.roles import Role
from comuna_platform.clock import Clock
from comuna_platform.errors import Unavailable

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
    status: ConsultationStatus = Field(description="open | certified: what the clock cannot know.")
    phase: Phase = Field(description="Where the published schedule stands on the server clock now.")
    assemblies_open_at: datetime
    candidates_close_at: datetime
    roll_cutoff_at: datetime
    voting_opens_at: datetime
    voting_closes_at: datetime
    certification_opens_at: datetime
    max_candidates: int
    funds_per_commune: int = Field(description="Funds announced per commune for the cycle, in minor units.")
    funds_currency: str
    commune_count: int
    certified_at: datetime | None
    # RESULTS: the declared tie-break and the hex seed of its draw, published from opening (docs/results.md).
    tie_break: list[str]
    draw_seed: str


def consultation_out(c: Consultation, now: datetime) -> ConsultationOut:
    return ConsultationOut(
        id=c.id,
        code=c.code,
        title=c.title,
        status=ConsultationStatus(c.status),
        phase=schedule_from(c).phase_at(now),
        assemblies_open_at=c.assemblies_open_at,
        candidates_close_at=c.candidates_close_at,
        roll_cutoff_at=c.roll_cutoff_at,
        voting_opens_at=c.voting_opens_at,
        voting_closes_at=c.voting_closes_at,
        certification_opens_at=c.certification_opens_at,
        max_candidates=c.max_candidates,
        funds_per_commune=c.funds_per_commune,
        funds_currency=c.funds_currency,
        commune_count=c.commune_count,
        certified_at=c.certified_at,
        tie_break=list(c.tie_break),
        draw_seed=bytes(c.draw_seed).hex(),
    )


async def clock_of(request: Request) -> Clock:
    # The runtime's clock, read per request: tests swap in a ManualClock.
    clock: Clock = request.app.state.runtime.clock
    return clock


async def identity_of(request: Request) -> IdentityClient:
    client: IdentityClient = request.app.state.identity
    return client


async def status_watcher_of(request: Request) -> StatusWatcher:
    # The voting slice's snapshot cache (see `service.on_startup`), seen only as a watcher here.
    watcher: StatusWatcher = request.app.state.voting_snapshots
    return watcher


IdentityDep = Annotated[IdentityClient, Depends(identity_of)]
ClockDep = Annotated[Clock, Depends(clock_of)]
WatcherDep = Annotated[StatusWatcher, Depends(status_watcher_of)]


async def pseudonyms_of(request: Request) -> Pseudonyms:
    """The service's voter pseudonyms (`domain.pseudonyms`); 503 without a configured secret."""
    pseudonyms: Pseudonyms | None = request.app.state.pseudonyms
    if pseudonyms is None:
        raise Unavailable(
            "participations cannot be recorded: no voter reference secret", code="voter_ref_secret_missing"
        )
    return pseudonyms


PseudonymsDep = Annotated[Pseudonyms, Depends(pseudonyms_of)]


async def record_of(request: Request) -> Record:
    """The public record's configuration (`storage.record.Record`): where each consultation's
    log lives, the keys that sign it and the witnesses whose cosignatures it keeps."""
    record: Record = request.app.state.record
    return record


RecordDep = Annotated[Record, Depends(record_of)]
