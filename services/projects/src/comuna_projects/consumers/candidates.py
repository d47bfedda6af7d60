"""Consumer of consultations' `consultations.candidate.recorded`: keeps each candidate's
category, which a project made from it shows (the allocation event does not carry it).

A candidate recorded without a known category counts as `other`; a malformed id is parked.
"""

from __future__ import annotations

from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna_platform.events import EventConsumer, EventHandler, ReceivedEvent, UnprocessableEvent
from comuna_platform.ids import try_parse_id
from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork
from comuna_projects.storage import repository
from comuna_projects.vocabulary import ProjectCategory

CATEGORIES = frozenset(ProjectCategory)


async def apply_candidate_recorded(
    uow: UnitOfWork, event: ReceivedEvent[consultation_events.CandidateRecorded]
) -> None:
    candidate_id = try_parse_id(event.message.candidate_id)
    if candidate_id is None:
        raise UnprocessableEvent("candidate event without a valid candidate_id")
    category = event.message.category if event.message.category in CATEGORIES else ProjectCategory.OTHER
    await repository.remember_candidate(uow.session, candidate_id, category)


def candidate_consumer(runtime: Runtime) -> EventConsumer:
    return runtime.consumer(
        name="projects-candidates",
        handlers=[EventHandler(consultation_events.CandidateRecorded, apply_candidate_recorded)],
    )
