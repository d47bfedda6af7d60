"""Consumer of `consultations.consultation.certified`: earmark grants for the winners."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna_funding.domain import allocations, ids
from comuna_funding.domain.allocations import GrantPolicy
from comuna_platform.events import EventConsumer, EventHandler, ReceivedEvent
from comuna_platform.runtime import Runtime

log = logging.getLogger(__name__)

SUBJECT = "consultations.consultation.certified"


def certified_handler(policy: GrantPolicy) -> EventHandler[consultation_events.ConsultationCertified]:
    async def apply(session: AsyncSession,
                    event: ReceivedEvent[consultation_events.ConsultationCertified]) -> None:
        consultation_id = ids.parse_uuid(event.message.consultation_id)
        if consultation_id is None:
            log.error("dropping certification with a malformed consultation id",
                      extra={"event_id": str(event.envelope.event_id),
                             "consultation_id": event.message.consultation_id})
            return
        winners = allocations.winners_of(event.message)
        created = await allocations.allocate_grants(session, consultation_id, winners, policy)
        log.info("grants allocated", extra={"consultation_id": str(consultation_id), "winners": len(winners),
                                            "allocated": len(created)})

    return EventHandler(consultation_events.ConsultationCertified, apply)


def certified_consumer(runtime: Runtime, policy: GrantPolicy) -> EventConsumer:
    return EventConsumer(
        runtime.db, runtime.js, name="funding-allocations", stream="CONSULTATIONS", filter_subject=SUBJECT,
        handlers=[certified_handler(policy)],
    )
