"""The lifecycle slice's protobuf edge: its domain events -> `consultations/v1/events.proto`."""

from __future__ import annotations

from comuna.consultations.v1 import events_pb2
from comuna_consultations.lifecycle.events import CandidateRecorded, ConsultationClosed, ConsultationOpened
from comuna_platform.events.translation import translates


@translates(ConsultationOpened)
def consultation_opened(e: ConsultationOpened) -> events_pb2.ConsultationOpened:
    message = events_pb2.ConsultationOpened(
        consultation_id=str(e.consultation_id), code=e.code, commune_count=e.commune_count
    )
    message.voting_opens_at.FromDatetime(e.voting_opens_at)
    message.voting_closes_at.FromDatetime(e.voting_closes_at)
    return message


@translates(CandidateRecorded)
def candidate_recorded(e: CandidateRecorded) -> events_pb2.CandidateRecorded:
    return events_pb2.CandidateRecorded(
        consultation_id=str(e.consultation_id),
        candidate_id=str(e.candidate_id),
        commune_id=str(e.commune_id),
        title=e.title,
        assembly_priority=e.assembly_priority,
    )


@translates(ConsultationClosed)
def consultation_closed(e: ConsultationClosed) -> events_pb2.ConsultationClosed:
    return events_pb2.ConsultationClosed(consultation_id=str(e.consultation_id), ballots=e.ballots)
