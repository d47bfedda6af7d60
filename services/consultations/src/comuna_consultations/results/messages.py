"""The results slice's protobuf edge: one conversion of a commune's outcome to `CommuneResult`,
shared by the certification events and the gRPC pages, and the events' translations."""

from __future__ import annotations

from comuna.consultations.v1 import events_pb2
from comuna_consultations.results.counting import Subtotal
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


def _subtotal_proto(s: Subtotal) -> events_pb2.ResultSubtotal:
    return events_pb2.ResultSubtotal(
        channel=s.channel,
        table_id=str(s.table_id) if s.table_id else "",
        votes={str(k): v for k, v in s.votes.items()},
        blank=s.blank,
        null_votes=s.null,
        participations=s.participations,
    )


def commune_proto(c: CommuneOutcome) -> events_pb2.CommuneResult:
    r, cert = c.result, c.certification
    return events_pb2.CommuneResult(
        commune_id=str(c.commune_id),
        commune_code=c.code,
        commune_name=c.name,
        ballots=r.ballots,
        winner_candidate_id=str(r.winner_candidate_id) if r.winner_candidate_id else "",
        candidates=[
            events_pb2.CandidateResult(
                candidate_id=str(k.candidate_id),
                title=k.title,
                votes=k.votes,
                rank=k.rank,
                assembly_priority=k.assembly_priority,
                estimated_cost_minor=k.estimated_cost or 0,
            )
            for k in r.ranked
        ],
        blank=r.blank,
        null_votes=r.null,
        participations=r.participations,
        roll_size=r.roll_size,
        conflicts=r.conflicts,
        subtotals=[_subtotal_proto(s) for s in r.subtotals],
        version=cert.version if cert else 0,
        supersedes_version=cert.supersedes or 0 if cert else 0,
        recount_reason=(cert.reason or "") if cert else "",
        tie_break=cert.tie_break if cert else [],
    )


@translates(CommuneResultCertified)
def commune_result_certified(e: CommuneResultCertified) -> events_pb2.CommuneResultCertified:
    message = events_pb2.CommuneResultCertified(
        consultation_id=str(e.consultation_id),
        consultation_code=e.consultation_code,
        result=commune_proto(e.commune),
        funds_currency=e.funds_currency,
    )
    assert e.commune.certification is not None
    message.certified_at.FromDatetime(e.commune.certification.certified_at)
    return message


@translates(ConsultationCertified)
def consultation_certified(e: ConsultationCertified) -> events_pb2.ConsultationCertified:
    return summary_proto(e.summary)
