"""Consumer of `consultations.commune_result.certified`: earmark the grant for the commune's winner.

Consultations emits one event per commune and certified version (the whole country in one
message would be too big for NATS), so each event allocates at most one grant, in its own short
transaction. A recount's event (version n+1) of a commune already funded is recorded in
`result_supersessions` and logged for review, moving no money (issue 10 reverses and
re-allocates); of a commune not funded yet, it funds the recount's winner.
"""

from __future__ import annotations

import logging

from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna_funding.domain import allocations
from comuna_funding.domain.allocations import GrantPolicy
from comuna_funding.messages import supersession_of, winner_of
from comuna_platform.events import EventConsumer, EventHandler, ReceivedEvent
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)

# Not the old "funding-allocations", whose durable may still exist on a server (unused). The
# platform now updates an existing durable to the current config, so a name can stay as it is.
DURABLE = "funding-commune-results"


def commune_result_handler(policy: GrantPolicy) -> EventHandler[consultation_events.CommuneResultCertified]:
    async def apply(uow: UnitOfWork, event: ReceivedEvent[consultation_events.CommuneResultCertified]) -> None:
        superseding = supersession_of(event.message)
        if superseding is not None:
            changed = await allocations.record_supersession(uow, superseding, policy)
            if changed is not None:
                log.warning(
                    "funded commune result superseded by a recount"
                    + (": the winner changed" if changed else " (same winner)"),
                    extra={
                        "consultation_id": str(superseding.consultation_id),
                        "commune_id": str(superseding.commune_id),
                        "version": superseding.version,
                    },
                )
                return
        found = winner_of(event.message)
        if found is None:
            return
        consultation_id, winner = found
        created = await allocations.allocate_grants(uow, consultation_id, [winner], policy)
        log.info(
            "grant allocated" if created else "grant already allocated",
            extra={"consultation_id": str(consultation_id), "commune_id": str(winner.commune_id)},
        )

    return EventHandler(consultation_events.CommuneResultCertified, apply)


def commune_result_consumer(runtime: Runtime, policy: GrantPolicy) -> EventConsumer:
    return runtime.consumer(name=DURABLE, handlers=[commune_result_handler(policy)])
