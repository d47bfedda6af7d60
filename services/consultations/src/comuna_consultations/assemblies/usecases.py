"""Assemblies and prioritisation: a commune's assembly sessions and the proposals they debated,
and the commune's ordered candidate list made from its proposals under the cycle's rules.

Recorded by the commune's spokesperson (or a national operator) while assemblies run, i.e.
while candidate registration is open on the clock; everything here is public.

The council of a session and the proposing council of a proposal are recorded as identity's
territory ids as given: consultations does not check here that the council belongs to the
commune (its snapshot holds communes only, and the register may move councils); the roll
loaded later names each voter's council, against which an auditor can compare them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from comuna_consultations.assemblies import storage
from comuna_consultations.assemblies.events import AssemblySessionRecorded, CommunePrioritised
from comuna_consultations.domain.consultations import existing, existing_commune
from comuna_consultations.domain.registration import lock_for_registration
from comuna_consultations.storage.models import AssemblySession, Candidate, Prioritisation, Proposal
from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.errors import InvalidInput, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class NewProposal:
    title: str
    problem: str
    category: str
    estimated_cost: int  # minor units of `currency`
    currency: str
    proposing_council_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class NewSession:
    council_id: uuid.UUID | None  # None: the commune's own assembly
    held_at: datetime
    place: str
    attendance: int
    minutes: str
    minutes_sha256: str | None
    proposals: Sequence[NewProposal]


async def record_session(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    new: NewSession,
    *,
    now: datetime,
    lineages: TerritoryLineages,
) -> tuple[AssemblySession, list[uuid.UUID]]:
    """Record a session held (not in the future) and the proposals it debated, all or nothing."""
    consultation = await lock_for_registration(uow, caller, consultation_id, commune_id, now=now, lineages=lineages)
    if new.held_at > now:
        raise InvalidInput("a session is recorded once it was held", code="session_in_future", field="held_at")
    for proposal in new.proposals:
        if proposal.currency != consultation.funds_currency:
            raise InvalidInput(
                f"costs are in {consultation.funds_currency} in this consultation", code="currency_mismatch"
            )
    session_id = new_id()
    proposal_ids = [new_id() for _ in new.proposals]
    await storage.insert_session(
        uow.session,
        {
            "id": session_id,
            "consultation_id": consultation_id,
            "commune_id": commune_id,
            "council_id": new.council_id,
            "held_at": new.held_at,
            "place": new.place,
            "attendance": new.attendance,
            "minutes": new.minutes,
            "minutes_sha256": new.minutes_sha256,
            "recorded_by": caller.subject,
            "recorded_at": now,
        },
        [
            {
                "id": proposal_id,
                "consultation_id": consultation_id,
                "commune_id": commune_id,
                "session_id": session_id,
                "title": p.title,
                "problem": p.problem,
                "category": p.category,
                "estimated_cost": p.estimated_cost,
                "currency": p.currency,
                "proposing_council_id": p.proposing_council_id,
            }
            for proposal_id, p in zip(proposal_ids, new.proposals, strict=True)
        ],
    )
    await uow.stage(
        AssemblySessionRecorded(
            consultation_id,
            commune_id,
            session_id,
            new.council_id,
            new.held_at,
            new.attendance,
            new.minutes_sha256,
            tuple(proposal_ids),
        ),
        aggregate_id=str(consultation_id),
    )
    row = await uow.session.get(AssemblySession, session_id)
    assert row is not None
    return row, proposal_ids


def _checked_order(
    proposal_ids: Sequence[uuid.UUID],
    found: dict[uuid.UUID, Proposal],
    commune_id: uuid.UUID,
    *,
    max_candidates: int,
    funds: int,
) -> list[Proposal]:
    """The proposals in the order given, once the list keeps the declared rules (each refusal
    has its own code, and nothing is written)."""
    if not proposal_ids:
        raise InvalidInput("the list names at least one proposal", code="prioritisation_empty")
    if len(set(proposal_ids)) != len(proposal_ids):
        raise InvalidInput("a proposal appears twice in the list", code="duplicate_proposal")
    if len(proposal_ids) > max_candidates:
        raise InvalidInput(f"a commune lists at most {max_candidates} candidates", code="too_many_candidates")
    ordered: list[Proposal] = []
    for proposal_id in proposal_ids:
        proposal = found.get(proposal_id)
        if proposal is None:
            raise NotFound(f"proposal {proposal_id} does not exist in this consultation", code="proposal_not_found")
        if proposal.commune_id != commune_id:
            raise InvalidInput(f"proposal {proposal_id} is another commune's", code="proposal_not_in_commune")
        if proposal.estimated_cost > funds:
            raise InvalidInput(
                f"proposal {proposal_id} costs {proposal.estimated_cost}, more than the funds announced ({funds})",
                code="cost_exceeds_funds",
            )
        ordered.append(proposal)
    return ordered


async def prioritise(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    proposal_ids: Sequence[uuid.UUID],
    *,
    now: datetime,
    lineages: TerritoryLineages,
) -> list[uuid.UUID]:
    """The commune's candidates become these proposals, in this order (priority 1 first),
    replacing any earlier list (and candidates recorded one by one) while registration is open."""
    consultation = await lock_for_registration(uow, caller, consultation_id, commune_id, now=now, lineages=lineages)
    found = await storage.proposals_by_id(uow.session, consultation_id, proposal_ids)
    ordered = _checked_order(
        proposal_ids,
        found,
        commune_id,
        max_candidates=consultation.max_candidates,
        funds=consultation.funds_per_commune,
    )
    candidate_ids = [new_id() for _ in ordered]
    await storage.replace_candidates(
        uow.session,
        consultation_id,
        commune_id,
        [
            {
                "id": candidate_id,
                "consultation_id": consultation_id,
                "commune_id": commune_id,
                "title": p.title,
                "description": p.problem,
                "assembly_priority": priority,
                "category": p.category,
                "estimated_cost": p.estimated_cost,
                "currency": p.currency,
                "proposal_id": p.id,
                "proposing_council_id": p.proposing_council_id,
            }
            for priority, (candidate_id, p) in enumerate(zip(candidate_ids, ordered, strict=True), start=1)
        ],
    )
    await storage.upsert_prioritisation(
        uow.session,
        {
            "consultation_id": consultation_id,
            "commune_id": commune_id,
            "proposal_ids": list(proposal_ids),
            "recorded_by": caller.subject,
            "recorded_at": now,
        },
    )
    await uow.stage(
        CommunePrioritised(consultation_id, commune_id, tuple(proposal_ids), tuple(candidate_ids), caller.subject),
        aggregate_id=str(consultation_id),
    )
    return candidate_ids


# --- reads (public) ---------------------------------------------------------------------------


async def list_sessions(
    uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> tuple[Sequence[AssemblySession], Sequence[Proposal]]:
    await existing(uow, consultation_id)
    await existing_commune(uow, consultation_id, commune_id)
    return (
        await storage.sessions_of(uow.session, consultation_id, commune_id),
        await storage.proposals_of(uow.session, consultation_id, commune_id),
    )


async def list_proposals(uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID) -> Sequence[Proposal]:
    await existing(uow, consultation_id)
    await existing_commune(uow, consultation_id, commune_id)
    return await storage.proposals_of(uow.session, consultation_id, commune_id)


async def prioritisation(
    uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID
) -> tuple[Prioritisation, Sequence[Candidate]]:
    await existing(uow, consultation_id)
    await existing_commune(uow, consultation_id, commune_id)
    row = await storage.prioritisation_of(uow.session, consultation_id, commune_id)
    if row is None:
        raise NotFound("this commune recorded no prioritisation", code="prioritisation_not_found")
    return row, await storage.candidates_of(uow.session, consultation_id, commune_id)
