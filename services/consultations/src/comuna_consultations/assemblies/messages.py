"""The assemblies slice's protobuf edge: its domain events -> `consultations/v1/events.proto`."""

from __future__ import annotations

from comuna.consultations.v1 import events_pb2
from comuna_consultations.assemblies.events import AssemblySessionRecorded, CommunePrioritised
from comuna_platform.events.translation import translates


@translates(AssemblySessionRecorded)
def assembly_session_recorded(e: AssemblySessionRecorded) -> events_pb2.AssemblySessionRecorded:
    message = events_pb2.AssemblySessionRecorded(
        consultation_id=str(e.consultation_id),
        commune_id=str(e.commune_id),
        session_id=str(e.session_id),
        council_id=str(e.council_id or ""),
        attendance=e.attendance,
        minutes_sha256=e.minutes_sha256 or "",
        proposal_ids=[str(p) for p in e.proposal_ids],
    )
    message.held_at.FromDatetime(e.held_at)
    return message


@translates(CommunePrioritised)
def commune_prioritised(e: CommunePrioritised) -> events_pb2.CommunePrioritised:
    return events_pb2.CommunePrioritised(
        consultation_id=str(e.consultation_id),
        commune_id=str(e.commune_id),
        proposal_ids=[str(p) for p in e.proposal_ids],
        candidate_ids=[str(c) for c in e.candidate_ids],
        recorded_by=e.recorded_by,
    )
