"""The lifecycle slice's protobuf edge: its domain events -> `consultations/v1/events.proto`."""

from __future__ import annotations

from comuna.consultations.v1 import events_pb2
from comuna_consultations.lifecycle.events import CandidateRecorded, CommuneHeld, ConsultationOpened, ScheduleAmended
from comuna_platform.events.translation import translates


@translates(ConsultationOpened)
def consultation_opened(e: ConsultationOpened) -> events_pb2.ConsultationOpened:
    message = events_pb2.ConsultationOpened(
        consultation_id=str(e.consultation_id),
        code=e.code,
        commune_count=e.commune_count,
        max_candidates=e.max_candidates,
        funds_per_commune=e.funds_per_commune,
        funds_currency=e.funds_currency,
    )
    s = e.schedule
    message.assemblies_open_at.FromDatetime(s.assemblies_open_at)
    message.candidates_close_at.FromDatetime(s.candidates_close_at)
    message.roll_cutoff_at.FromDatetime(s.roll_cutoff_at)
    message.voting_opens_at.FromDatetime(s.voting_opens_at)
    message.voting_closes_at.FromDatetime(s.voting_closes_at)
    message.certification_opens_at.FromDatetime(s.certification_opens_at)
    return message


@translates(CandidateRecorded)
def candidate_recorded(e: CandidateRecorded) -> events_pb2.CandidateRecorded:
    return events_pb2.CandidateRecorded(
        consultation_id=str(e.consultation_id),
        candidate_id=str(e.candidate_id),
        commune_id=str(e.commune_id),
        title=e.title,
        assembly_priority=e.assembly_priority,
        category=e.category,
        estimated_cost=e.estimated_cost,
        currency=e.currency,
        proposal_id=str(e.proposal_id or ""),
        proposing_council_id=str(e.proposing_council_id or ""),
    )


@translates(ScheduleAmended)
def schedule_amended(e: ScheduleAmended) -> events_pb2.ScheduleAmended:
    message = events_pb2.ScheduleAmended(
        consultation_id=str(e.consultation_id),
        amendment_id=str(e.amendment_id),
        changed=list(e.changed),
        reason=e.reason,
        amended_by=e.amended_by,
    )
    s = e.schedule
    message.assemblies_open_at.FromDatetime(s.assemblies_open_at)
    message.candidates_close_at.FromDatetime(s.candidates_close_at)
    message.roll_cutoff_at.FromDatetime(s.roll_cutoff_at)
    message.voting_opens_at.FromDatetime(s.voting_opens_at)
    message.voting_closes_at.FromDatetime(s.voting_closes_at)
    message.certification_opens_at.FromDatetime(s.certification_opens_at)
    return message


@translates(CommuneHeld)
def commune_held(e: CommuneHeld) -> events_pb2.CommuneHeld:
    message = events_pb2.CommuneHeld(
        consultation_id=str(e.consultation_id),
        commune_id=str(e.commune_id),
        kind=e.kind,
        reason=e.reason,
        held_by=e.held_by,
    )
    if e.voting_opens_at is not None and e.voting_closes_at is not None:
        message.voting_opens_at.FromDatetime(e.voting_opens_at)
        message.voting_closes_at.FromDatetime(e.voting_closes_at)
    return message
