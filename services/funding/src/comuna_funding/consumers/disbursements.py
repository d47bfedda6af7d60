"""Consumer of `projects.milestone.verified`: pay the milestone's tranche."""

from __future__ import annotations

import logging

from comuna.projects.v1 import events_pb2 as project_events
from comuna_funding.domain import disbursements
from comuna_platform.events import EventConsumer, EventHandler, ReceivedEvent, UnprocessableEvent
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)


async def apply_milestone_verified(uow: UnitOfWork, event: ReceivedEvent[project_events.MilestoneVerified]) -> None:
    tranche = disbursements.tranche_of(event.message)
    if tranche is None:
        # Without valid project and milestone ids not even a refusal can be recorded: park it
        # for an operator rather than lose a tranche nobody would know about.
        raise UnprocessableEvent("milestone event without valid project_id and milestone_id")
    disbursement = await disbursements.disburse_tranche(uow.session, tranche)
    log.info(
        "milestone handled",
        extra={"milestone_id": str(tranche.milestone_id), "status": disbursement.status, "reason": disbursement.reason},
    )


def milestone_consumer(runtime: Runtime) -> EventConsumer:
    return runtime.consumer(
        name="funding-disbursements",
        handlers=[EventHandler(project_events.MilestoneVerified, apply_milestone_verified)],
    )
