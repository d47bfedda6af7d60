"""Consumer of `consultations.commune_result.certified` and `consultations.consultation.certified`.

Every commune result is kept (`certified_results`) for the co-funding plan. A consultation that
declared co-funding rules is funded by them when it is certified as a whole (and re-planned on a
recount after that: `domain.cofunding`). One that declared none gets the built-in national grant
for each winner, as each commune's result arrives:

Consultations emits one event per commune and certified version (the whole country in one
message would be too big for NATS), so each event allocates at most one grant, in its own short
transaction. A recount's event (version n+1) of a commune already funded is recorded in
`result_supersessions` and logged for review, moving no money (issue 10 reverses and
re-allocates); of a commune not funded yet, it funds the recount's winner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna_funding.domain import allocations, cofunding
from comuna_funding.domain.allocations import GrantPolicy
from comuna_funding.domain.cofunding import CommitPolicy
from comuna_funding.messages import certified_result_of, supersession_of, winner_of
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.events import EventConsumer, EventHandler, ReceivedEvent, UnprocessableEvent
from comuna_platform.ids import try_parse_id
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)

# Not the old "funding-allocations", whose durable may still exist on a server (unused). The
# platform now updates an existing durable to the current config, so a name can stay as it is.
DURABLE = "funding-commune-results"


def commune_result_handler(
    policy: GrantPolicy, lineages: Callable[[], TerritoryLineages], commit: CommitPolicy
) -> EventHandler[consultation_events.CommuneResultCertified]:
    async def apply(uow: UnitOfWork, event: ReceivedEvent[consultation_events.CommuneResultCertified]) -> None:
        result = certified_result_of(event.message)
        if result is not None:
            await cofunding.record_result(uow.session, result)
            if await cofunding.declared_rules(uow.session, result.consultation_id):
                # Co-funded: the plan is applied on the consultation's certification; a recount
                # after that re-plans (reverse and re-allocate the difference).
                if result.commune.version > 1:
                    reversed_ids, created = await cofunding.apply_recount(
                        uow, lineages(), result.consultation_id, commit
                    )
                    log.info(
                        "recount re-planned",
                        extra={"reversed": len(reversed_ids), "created": len(created)},
                    )
                return
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


def consultation_handler(
    lineages: Callable[[], TerritoryLineages], commit: CommitPolicy
) -> EventHandler[consultation_events.ConsultationCertified]:
    async def apply(uow: UnitOfWork, event: ReceivedEvent[consultation_events.ConsultationCertified]) -> None:
        consultation_id = try_parse_id(event.message.consultation_id)
        if consultation_id is None:
            raise UnprocessableEvent("consultation certified without a valid consultation_id")
        created = await cofunding.apply_plan(uow, lineages(), consultation_id, event.message.commune_count, commit)
        if created is not None:
            log.info(
                "co-funding plan applied",
                extra={"consultation_id": str(consultation_id), "allocations": len(created)},
            )

    return EventHandler(consultation_events.ConsultationCertified, apply)


def commune_result_consumer(
    runtime: Runtime, policy: GrantPolicy, lineages: Callable[[], TerritoryLineages], commit: CommitPolicy
) -> EventConsumer:
    return runtime.consumer(
        name=DURABLE,
        handlers=[commune_result_handler(policy, lineages, commit), consultation_handler(lineages, commit)],
    )
