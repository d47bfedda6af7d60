"""Funding's protobuf edge: events we consume -> domain inputs, domain events -> the event
messages we publish (registered when the service is assembled), and gRPC views."""

from __future__ import annotations

import logging
import uuid

from comuna.common.v1 import money_pb2
from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna.funding.v1 import events_pb2 as funding_events
from comuna.funding.v1 import funding_pb2 as pb
from comuna.projects.v1 import events_pb2 as project_events
from comuna_funding.domain.allocations import MAX_TEXT, Supersession, Winner
from comuna_funding.domain.cofunding import CertifiedResultIn
from comuna_funding.domain.disbursements import Tranche
from comuna_funding.domain.events import AllocationCreated, AllocationReleased, TrancheDisbursed, TrancheRejected
from comuna_funding.domain.funding_plan import CertifiedCommune, RankedCandidate
from comuna_funding.domain.queries import AllocationView
from comuna_funding.domain.tranches import Cancellation, MilestonePlan, ProjectPlan
from comuna_platform.events.translation import translates
from comuna_platform.ids import try_parse_id

log = logging.getLogger(__name__)


def money(amount_minor: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount_minor, currency=currency)


def _id_text(value: uuid.UUID | None) -> str:
    return str(value) if value is not None else ""


# --- consumed events -> domain inputs --------------------------------------------------------


def winner_of(event: consultation_events.CommuneResultCertified) -> tuple[uuid.UUID, Winner] | None:
    """(consultation id, the commune's winner), or None when the commune chose nothing or the
    event's ids are malformed (logged).

    A malformed event is dropped rather than raised on: raising would only make it be
    redelivered with the same bad ids, and it concerns no other commune.
    """
    result = event.result
    if not result.winner_candidate_id:
        return None
    consultation_id = try_parse_id(event.consultation_id)
    commune_id = try_parse_id(result.commune_id)
    candidate_id = try_parse_id(result.winner_candidate_id)
    if consultation_id is None or commune_id is None or candidate_id is None:
        log.error(
            "dropping commune result with malformed ids",
            extra={"consultation_id": event.consultation_id, "commune_id": result.commune_id},
        )
        return None
    title = next((c.title for c in result.candidates if c.candidate_id == result.winner_candidate_id), "")
    return consultation_id, Winner(
        commune_id=commune_id,
        commune_code=result.commune_code[:MAX_TEXT],
        candidate_id=candidate_id,
        title=title[:MAX_TEXT],
    )


def supersession_of(event: consultation_events.CommuneResultCertified) -> Supersession | None:
    """What a recount's event says (a version above 1, superseding the one before), or None for a
    first certification or malformed ids (logged)."""
    result = event.result
    if result.version <= 1:
        return None
    consultation_id = try_parse_id(event.consultation_id)
    commune_id = try_parse_id(result.commune_id)
    if consultation_id is None or commune_id is None:
        log.error(
            "dropping superseding commune result with malformed ids",
            extra={"consultation_id": event.consultation_id, "commune_id": result.commune_id},
        )
        return None
    return Supersession(
        consultation_id=consultation_id,
        commune_id=commune_id,
        version=result.version,
        supersedes=result.supersedes_version or result.version - 1,
        new_winner_candidate_id=try_parse_id(result.winner_candidate_id) if result.winner_candidate_id else None,
        reason=result.recount_reason[:MAX_TEXT],
    )


def certified_result_of(event: consultation_events.CommuneResultCertified) -> CertifiedResultIn | None:
    """What the co-funding plan needs of a commune's certified version (its full ranking and
    costs), or None for malformed ids (logged and dropped, as `winner_of`)."""
    result = event.result
    consultation_id = try_parse_id(event.consultation_id)
    commune_id = try_parse_id(result.commune_id)
    candidates = [(try_parse_id(c.candidate_id), c) for c in result.candidates]
    if consultation_id is None or commune_id is None or any(k is None for k, _ in candidates):
        log.error(
            "dropping commune result with malformed ids",
            extra={"consultation_id": event.consultation_id, "commune_id": result.commune_id},
        )
        return None
    return CertifiedResultIn(
        consultation_id=consultation_id,
        funds_currency=event.funds_currency or "USD",
        commune=CertifiedCommune(
            commune_id=commune_id,
            commune_code=result.commune_code[:MAX_TEXT],
            version=max(result.version, 1),
            candidates=tuple(
                RankedCandidate(
                    candidate_id=k,
                    rank=c.rank,
                    title=c.title[:MAX_TEXT],
                    estimated_cost_minor=c.estimated_cost_minor or None,
                )
                for k, c in candidates
                if k is not None
            ),
        ),
    )


def tranche_of(event: project_events.MilestoneVerified) -> Tranche | None:
    """The tranche, or None when the event cannot even be recorded (no valid project/milestone id)."""
    project_id = try_parse_id(event.project_id)
    milestone_id = try_parse_id(event.milestone_id)
    if project_id is None or milestone_id is None:
        log.error(
            "dropping milestone event with malformed ids",
            extra={"project_id": event.project_id, "milestone_id": event.milestone_id},
        )
        return None
    return Tranche(
        project_id=project_id,
        milestone_id=milestone_id,
        allocation_id=try_parse_id(event.allocation_id),
        commune_id=try_parse_id(event.commune_id),
        amount_minor=event.tranche.amount_minor,
        currency=event.tranche.currency[:16],
    )


def project_plan_of(event: project_events.ProjectCreated | project_events.PlanChanged) -> ProjectPlan | None:
    """The milestones' tranches to reserve, or None when the project, its allocation or one of
    its milestones has no valid id (nothing could be reserved or recorded for it)."""
    project = event.project
    project_id = try_parse_id(project.project_id)
    allocation_id = try_parse_id(project.allocation_id)
    milestone_ids = [try_parse_id(m.milestone_id) for m in project.milestones]
    if project_id is None or allocation_id is None or any(m is None for m in milestone_ids):
        log.error(
            "project event with malformed ids",
            extra={"project_id": project.project_id, "allocation_id": project.allocation_id},
        )
        return None
    return ProjectPlan(
        project_id=project_id,
        allocation_id=allocation_id,
        commune_id=try_parse_id(project.commune_id),
        milestones=tuple(
            MilestonePlan(
                milestone_id=milestone_id,
                sequence=m.sequence,
                amount_minor=m.tranche.amount_minor,
                currency=m.tranche.currency[:16],
            )
            for milestone_id, m in zip(milestone_ids, project.milestones, strict=True)
            if milestone_id is not None
        ),
    )


def cancellation_of(event: project_events.ProjectCancelled) -> Cancellation | None:
    """The cancellation, or None without valid project and allocation ids."""
    project_id = try_parse_id(event.project_id)
    allocation_id = try_parse_id(event.allocation_id)
    if project_id is None or allocation_id is None:
        log.error(
            "project cancellation with malformed ids",
            extra={"project_id": event.project_id, "allocation_id": event.allocation_id},
        )
        return None
    return Cancellation(
        project_id=project_id,
        allocation_id=allocation_id,
        commune_id=try_parse_id(event.commune_id),
        reason=event.reason[:MAX_TEXT],
    )


# --- domain events -> published messages -----------------------------------------------------


@translates(AllocationCreated)
def allocation_created(e: AllocationCreated) -> funding_events.AllocationCreated:
    return funding_events.AllocationCreated(
        allocation_id=str(e.allocation_id),
        consultation_id=str(e.consultation_id),
        commune_id=str(e.commune_id),
        candidate_id=str(e.candidate_id),
        title=e.title,
        amount=money(e.amount_minor, e.currency),
        funding_source=e.funding_source,
        transfer_id=str(e.transfer_id),
        commune_code=e.commune_code,
    )


@translates(TrancheDisbursed)
def tranche_disbursed(e: TrancheDisbursed) -> funding_events.TrancheDisbursed:
    return funding_events.TrancheDisbursed(
        disbursement_id=str(e.disbursement_id),
        allocation_id=str(e.allocation_id),
        project_id=str(e.project_id),
        milestone_id=str(e.milestone_id),
        commune_id=str(e.commune_id),
        amount=money(e.amount_minor, e.currency),
        transfer_id=str(e.transfer_id),
    )


@translates(TrancheRejected)
def tranche_rejected(e: TrancheRejected) -> funding_events.TrancheRejected:
    return funding_events.TrancheRejected(
        disbursement_id=str(e.disbursement_id),
        allocation_id=_id_text(e.allocation_id),
        project_id=str(e.project_id),
        milestone_id=str(e.milestone_id),
        commune_id=_id_text(e.commune_id),
        amount=money(e.amount_minor, e.currency),
        reason=e.reason,
    )


@translates(AllocationReleased)
def allocation_released(e: AllocationReleased) -> funding_events.AllocationReleased:
    return funding_events.AllocationReleased(
        allocation_id=str(e.allocation_id),
        project_id=str(e.project_id),
        commune_id=str(e.commune_id),
        funding_source=e.funding_source,
        amount=money(e.amount_minor, e.currency),
        transfer_id=str(e.transfer_id),
        voided_milestone_ids=[str(m) for m in e.voided_milestone_ids],
        reason=e.reason,
    )


# --- gRPC views ------------------------------------------------------------------------------


def allocation_message(view: AllocationView) -> pb.Allocation:
    a = view.allocation
    return pb.Allocation(
        allocation_id=str(a.id),
        consultation_id=str(a.consultation_id),
        commune_id=str(a.commune_id),
        candidate_id=str(a.candidate_id),
        title=a.title,
        funding_source=a.funding_source,
        amount=money(a.amount_minor, a.currency),
        disbursed=money(view.disbursed_minor, a.currency),
    )
