"""Consumers of funding's events: allocations open projects, disbursements fund milestones,
rejections are noted on the milestone.

This module only translates events into domain inputs. An event that cannot be translated
(malformed ids, non-positive amount) raises `MalformedEvent`, an `UnprocessableEvent`: the
platform parks it at once (redelivering can never make it valid) and the stream moves on; an
operator sees it in `comuna_parked_messages` and can replay it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from comuna.funding.v1 import events_pb2 as funding_events
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.clock import Clock
from comuna_platform.events import EventConsumer, EventHandler, ReceivedEvent, UnprocessableEvent
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork
from comuna_projects.domain import projects
from comuna_projects.domain.plan import MilestonePlan

M = TypeVar("M", bound=Any)
T = TypeVar("T")

CURRENCY = re.compile(r"^[A-Z]{3}$")
TERRITORY_CODE = re.compile(r"^[A-Z0-9]+(\.[A-Z0-9]+)*$")
MAX_CODE_LENGTH = 64
MAX_SOURCE_LENGTH = 100


class MalformedEvent(UnprocessableEvent):
    """The event cannot be turned into a domain input."""


def _uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise MalformedEvent(f"{name} is not a UUID") from exc


def _optional_uuid(value: str, name: str) -> uuid.UUID | None:
    return _uuid(value, name) if value else None


def allocation_from(message: funding_events.AllocationCreated) -> projects.Allocation:
    if not message.HasField("amount") or message.amount.amount_minor <= 0:
        raise MalformedEvent("allocation amount must be positive")
    if not CURRENCY.match(message.amount.currency):
        raise MalformedEvent("allocation currency is not an ISO 4217 code")
    code = message.commune_code
    if not code or len(code) > MAX_CODE_LENGTH or not TERRITORY_CODE.match(code):
        raise MalformedEvent("allocation has no valid commune_code")
    title = message.title.strip()
    if not title:
        raise MalformedEvent("allocation has no title")
    return projects.Allocation(
        allocation_id=_uuid(message.allocation_id, "allocation_id"),
        consultation_id=_uuid(message.consultation_id, "consultation_id"),
        commune_id=_uuid(message.commune_id, "commune_id"),
        commune_code=code,
        candidate_id=_optional_uuid(message.candidate_id, "candidate_id"),
        title=title,
        budget_minor=message.amount.amount_minor,
        currency=message.amount.currency,
        funding_source=message.funding_source.strip()[:MAX_SOURCE_LENGTH] or "unknown",
    )


def disbursement_from(
    event: ReceivedEvent[funding_events.TrancheDisbursed],
) -> projects.Disbursement:
    message = event.message
    if not message.HasField("amount") or message.amount.amount_minor < 0:
        raise MalformedEvent("disbursed amount must not be negative")
    if not CURRENCY.match(message.amount.currency):
        raise MalformedEvent("disbursed currency is not an ISO 4217 code")
    return projects.Disbursement(
        disbursement_id=_uuid(message.disbursement_id, "disbursement_id"),
        allocation_id=_optional_uuid(message.allocation_id, "allocation_id"),
        project_id=_optional_uuid(message.project_id, "project_id"),
        milestone_id=_uuid(message.milestone_id, "milestone_id"),
        amount_minor=message.amount.amount_minor,
        currency=message.amount.currency,
        disbursed_at=event.envelope.time,
        transfer_id=_optional_uuid(message.transfer_id, "transfer_id"),
    )


MAX_REASON_LENGTH = 200


def rejection_from(event: ReceivedEvent[funding_events.TrancheRejected]) -> projects.Rejection:
    message = event.message
    reason = message.reason.strip()
    if not reason:
        raise MalformedEvent("tranche rejection has no reason")
    return projects.Rejection(
        disbursement_id=_uuid(message.disbursement_id, "disbursement_id"),
        allocation_id=_optional_uuid(message.allocation_id, "allocation_id"),
        project_id=_optional_uuid(message.project_id, "project_id"),
        milestone_id=_uuid(message.milestone_id, "milestone_id"),
        reason=reason[:MAX_REASON_LENGTH],
        rejected_at=event.envelope.time,
    )


def _translating_handler(
    message_type: type[M],
    translate: Callable[[ReceivedEvent[M]], T],
    act: Callable[[UnitOfWork, T], Awaitable[object]],
) -> EventHandler[M]:
    """Translate the event into a domain input (`MalformedEvent` parks it) and act on it."""

    async def apply(uow: UnitOfWork, event: ReceivedEvent[M]) -> None:
        await act(uow, translate(event))

    return EventHandler(message_type, apply)


def allocation_handler(
    plan: MilestonePlan, lineages: Callable[[], TerritoryLineages], clock: Clock
) -> EventHandler[funding_events.AllocationCreated]:
    async def create(uow: UnitOfWork, allocation: projects.Allocation) -> object:
        return await projects.create_project(uow, plan, allocation, lineages=lineages(), now=clock.now())

    return _translating_handler(funding_events.AllocationCreated, lambda e: allocation_from(e.message), create)


def disbursement_handler() -> EventHandler[funding_events.TrancheDisbursed]:
    return _translating_handler(funding_events.TrancheDisbursed, disbursement_from, projects.record_disbursement)


def rejection_handler() -> EventHandler[funding_events.TrancheRejected]:
    return _translating_handler(funding_events.TrancheRejected, rejection_from, projects.record_rejection)


def consumers(
    runtime: Runtime, plan: MilestonePlan, lineages: Callable[[], TerritoryLineages]
) -> Sequence[EventConsumer]:
    return [
        runtime.consumer(name="projects-allocations", handlers=[allocation_handler(plan, lineages, runtime.clock)]),
        runtime.consumer(name="projects-disbursements", handlers=[disbursement_handler()]),
        runtime.consumer(name="projects-rejections", handlers=[rejection_handler()]),
    ]
