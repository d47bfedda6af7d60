"""Consumer of `projects.milestone.verified`: pay the milestone's tranche."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from comuna.projects.v1 import events_pb2 as project_events
from comuna_funding.domain import disbursements
from comuna_funding.messages import tranche_of
from comuna_platform.events import EventConsumer, EventHandler, ReceivedEvent
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)


async def apply_milestone_verified(
    session: AsyncSession, event: ReceivedEvent[project_events.MilestoneVerified]
) -> None:
    tranche = tranche_of(event.message)
    if tranche is None:
        return
    disbursement = await disbursements.disburse_tranche(UnitOfWork.of(session), tranche)
    log.info(
        "milestone handled",
        extra={"milestone_id": str(tranche.milestone_id), "status": disbursement.status, "reason": disbursement.reason},
    )


def milestone_consumer(runtime: Runtime) -> EventConsumer:
    return EventConsumer(
        runtime.db,
        runtime.js,
        name="funding-disbursements",
        handlers=[EventHandler(project_events.MilestoneVerified, apply_milestone_verified)],
    )
