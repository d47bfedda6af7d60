"""Consumer of projects' events about money: `projects.project.created` reserves the milestones'
tranches, `projects.plan.changed` voids the tranches of milestones no longer planned and
reserves the new ones, `projects.milestone.verified` pays one, `projects.project.cancelled`
voids what is still reserved and returns the rest to the funder (domain/tranches.py). One durable for all
three, so no new NATS permission is needed."""

from __future__ import annotations

import logging

from comuna.projects.v1 import events_pb2 as project_events
from comuna_funding.domain import disbursements, tranches
from comuna_funding.messages import cancellation_of, project_plan_of, tranche_of
from comuna_platform.events import EventConsumer, EventHandler, ReceivedEvent, UnprocessableEvent
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)


async def apply_milestone_verified(uow: UnitOfWork, event: ReceivedEvent[project_events.MilestoneVerified]) -> None:
    tranche = tranche_of(event.message)
    if tranche is None:
        # Without valid project and milestone ids not even a refusal can be recorded: park it
        # for an operator rather than lose a tranche nobody would know about.
        raise UnprocessableEvent("milestone event without valid project_id and milestone_id")
    # A milestone with a reserved tranche posts it. One without: a milestone of a planned project
    # waits for its reservation (redelivered with back-off, parked if it never comes); one of a
    # project older than plans and tranches (plan_revision 0) is paid in one transfer, as before.
    disbursement = await tranches.disburse_reserved(uow, tranche)
    if disbursement is None and event.message.plan_revision > 0:
        raise tranches.ReservationPending(f"milestone {tranche.milestone_id} has no tranche reserved yet")
    if disbursement is None:
        disbursement = await disbursements.disburse_tranche(uow, tranche)
    log.info(
        "milestone handled",
        extra={"milestone_id": str(tranche.milestone_id), "status": disbursement.status, "reason": disbursement.reason},
    )


async def apply_project_created(uow: UnitOfWork, event: ReceivedEvent[project_events.ProjectCreated]) -> None:
    plan = project_plan_of(event.message)
    if plan is None:
        raise UnprocessableEvent("project event without valid project, allocation and milestone ids")
    try:
        reserved = await tranches.reserve_tranches(uow, plan)
    except tranches.ReservationRefused as exc:
        # Nothing was written (the unit of work rolls back): parked for an operator, who can
        # replay it once the cause is fixed. AllocationNotCommitted is left to propagate: the
        # event is redelivered with back-off until the funder's money is committed.
        raise UnprocessableEvent(f"tranches not reserved: {exc}") from exc
    log.info(
        "project tranches reserved" if reserved else "project tranches already reserved",
        extra={"project_id": str(plan.project_id), "tranches": len(reserved)},
    )


async def apply_plan_changed(uow: UnitOfWork, event: ReceivedEvent[project_events.PlanChanged]) -> None:
    plan = project_plan_of(event.message)
    if plan is None:
        raise UnprocessableEvent("plan change without valid project, allocation and milestone ids")
    try:
        replan = await tranches.replan_project(uow, plan)
    except tranches.ReservationRefused as exc:
        raise UnprocessableEvent(f"plan change not applied: {exc}") from exc
    log.info(
        "project plan changed",
        extra={"project_id": str(plan.project_id), "voided": len(replan.voided), "reserved": len(replan.reserved)},
    )


async def apply_project_cancelled(uow: UnitOfWork, event: ReceivedEvent[project_events.ProjectCancelled]) -> None:
    cancellation = cancellation_of(event.message)
    if cancellation is None:
        raise UnprocessableEvent("project cancellation without valid project_id and allocation_id")
    try:
        release = await tranches.cancel_project(uow, cancellation)
    except tranches.ReservationRefused as exc:
        raise UnprocessableEvent(f"cancellation not applied: {exc}") from exc
    log.info(
        "project cancelled",
        extra={
            "project_id": str(cancellation.project_id),
            "voided": len(release.voided),
            "released_minor": release.released_minor,
        },
    )


def milestone_consumer(runtime: Runtime) -> EventConsumer:
    return runtime.consumer(
        name="funding-disbursements",
        handlers=[
            EventHandler(project_events.ProjectCreated, apply_project_created),
            EventHandler(project_events.MilestoneVerified, apply_milestone_verified),
            EventHandler(project_events.ProjectCancelled, apply_project_cancelled),
            EventHandler(project_events.PlanChanged, apply_plan_changed),
        ],
    )
