"""Earmark the national grant for each commune's winning project of a certified consultation.

Money flow (double entry, one currency):

    treasury:<source>:<CUR>  --grant_allocation-->  allocation:<allocation_id>

The treasury account has no balance limit: it stands for appropriated money entering the
system, so its debit balance is the total committed by that funding source. The earmark
account may not pay out more than it received (`debits_must_not_exceed_credits`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from comuna.common.v1 import money_pb2
from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna.funding.v1 import events_pb2 as funding_events
from comuna_funding.domain import ids, ledger
from comuna_funding.domain.ledger import AccountSpec, NewTransfer
from comuna_funding.storage import repository
from comuna_platform.events import NewEvent, stage_events
from comuna_platform.events.registry import subject_of

log = logging.getLogger(__name__)

# Deterministic event ids are derived from the subject (stable since the first release).
ALLOCATION_CREATED = subject_of(funding_events.AllocationCreated)
GRANT_ALLOCATION = "grant_allocation"
MAX_TEXT = 500


@dataclass(frozen=True)
class GrantPolicy:
    amount_minor: int
    currency: str
    funding_source: str


@dataclass(frozen=True)
class Winner:
    commune_id: uuid.UUID
    commune_code: str
    candidate_id: uuid.UUID
    title: str


def treasury_spec(policy: GrantPolicy) -> AccountSpec:
    return AccountSpec(
        key=f"treasury:{policy.funding_source}:{policy.currency}", currency=policy.currency, kind="source"
    )


def earmark_spec(allocation_id: uuid.UUID, currency: str) -> AccountSpec:
    return AccountSpec(
        key=f"allocation:{allocation_id}", currency=currency, kind="allocation", debits_must_not_exceed_credits=True
    )


def winner_of(event: consultation_events.CommuneResultCertified) -> tuple[uuid.UUID, Winner] | None:
    """(consultation id, the commune's winner), or None when the commune chose nothing or the
    event's ids are malformed (logged).

    A malformed event is dropped rather than raised on: raising would only make it be
    redelivered with the same bad ids, and it concerns no other commune.
    """
    result = event.result
    if not result.winner_candidate_id:
        return None
    consultation_id = ids.parse_uuid(event.consultation_id)
    commune_id = ids.parse_uuid(result.commune_id)
    candidate_id = ids.parse_uuid(result.winner_candidate_id)
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


async def allocate_grants(
    session: AsyncSession, consultation_id: uuid.UUID, winners: Sequence[Winner], policy: GrantPolicy
) -> list[uuid.UUID]:
    """Allocate `policy`'s grant to each winner not yet funded by that source; returns the new ids.

    Ids are derived from (consultation, commune, source), so a replay finds its allocations
    (and, in a race, its transfers) already there and allocates nothing twice, whichever event
    named the winner (one commune's result now, a whole certification in earlier versions).
    The consumer passes one winner per event; the batch form serves bulk callers and tests.
    """
    planned = {ids.allocation_id_for(consultation_id, w.commune_id, policy.funding_source): w for w in winners}
    existing = await repository.existing_allocation_ids(session, list(planned))
    new = {aid: w for aid, w in planned.items() if aid not in existing}
    if not new:
        return []
    treasury = treasury_spec(policy)
    earmarks = {aid: earmark_spec(aid, policy.currency) for aid in new}
    await ledger.ensure_accounts(session, [treasury, *earmarks.values()])
    transfers = {
        aid: NewTransfer(
            id=ids.allocation_transfer_id_for(consultation_id, w.commune_id, policy.funding_source),
            debit_account_id=treasury.id,
            credit_account_id=earmarks[aid].id,
            amount=policy.amount_minor,
            currency=policy.currency,
            code=GRANT_ALLOCATION,
            reference=f"consultation:{consultation_id} commune:{w.commune_code}"[: ledger.MAX_REFERENCE],
        )
        for aid, w in new.items()
    }
    await ledger.create_transfers(session, list(transfers.values()))
    inserted = await repository.insert_allocations_if_absent(
        session,
        [
            {
                "id": aid,
                "consultation_id": consultation_id,
                "commune_id": w.commune_id,
                "commune_code": w.commune_code,
                "candidate_id": w.candidate_id,
                "title": w.title,
                "amount_minor": policy.amount_minor,
                "currency": policy.currency,
                "funding_source": policy.funding_source,
                "account_id": earmarks[aid].id,
                "transfer_id": transfers[aid].id,
            }
            for aid, w in new.items()
        ],
    )
    await stage_events(
        session,
        [
            NewEvent(
                aggregate_id=str(aid),
                event_id=ids.event_id_for(ALLOCATION_CREATED, aid),
                message=funding_events.AllocationCreated(
                    allocation_id=str(aid),
                    consultation_id=str(consultation_id),
                    commune_id=str(w.commune_id),
                    candidate_id=str(w.candidate_id),
                    title=w.title,
                    amount=money_pb2.Money(amount_minor=policy.amount_minor, currency=policy.currency),
                    funding_source=policy.funding_source,
                    transfer_id=str(transfers[aid].id),
                    commune_code=w.commune_code,
                ),
            )
            for aid, w in new.items()
            if aid in inserted
        ],
    )
    return [aid for aid in new if aid in inserted]
