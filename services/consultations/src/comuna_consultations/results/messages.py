"""The results slice's protobuf edge: one conversion of a commune's outcome to `CommuneResult`,
shared by the certification events and the gRPC pages, and the events' translations."""

from __future__ import annotations

from comuna.consultations.v1 import events_pb2
from comuna_consultations.results.events import CommuneResultCertified, ConsultationCertified
from comuna_consultations.results.outcomes import CommuneOutcome, Summary
from comuna_platform.events.translation import translates


def summary_proto(summary: Summary) -> events_pb2.ConsultationCertified:
    message = events_pb2.ConsultationCertified(
        consultation_id=str(summary.consultation_id),
        code=summary.code,
        ballots=summary.ballots,
        commune_count=summary.commune_count,
        communes_with_winner=summary.communes_with_winner,
    )
    message.certified_at.FromDatetime(summary.certified_at)
    return message


def commune_proto(c: CommuneOutcome) -> events_pb2.CommuneResult:
    return events_pb2.CommuneResult(
        commune_id=str(c.commune_id),
        commune_code=c.code,
        commune_name=c.name,
        ballots=c.ballots,
        winner_candidate_id=str(c.winner_candidate_id) if c.winner_candidate_id else "",
        candidates=[
            events_pb2.CandidateResult(
                candidate_id=str(k.candidate_id),
                title=k.title,
                votes=k.votes,
                rank=k.rank,
                assembly_priority=k.assembly_priority,
            )
            for k in c.candidates
        ],
    )


@translates(CommuneResultCertified)
def commune_result_certified(e: CommuneResultCertified) -> events_pb2.CommuneResultCertified:
    message = events_pb2.CommuneResultCertified(
        consultation_id=str(e.results.consultation_id),
        consultation_code=e.results.code,
        result=commune_proto(e.commune),
    )
    message.certified_at.FromDatetime(e.results.certified_at)
    return message


@translates(ConsultationCertified)
def consultation_certified(e: ConsultationCertified) -> events_pb2.ConsultationCertified:
    return summary_proto(e.summary)
