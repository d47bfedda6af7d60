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

from comuna_funding.domain import ids, ledger
from comuna_funding.domain.events import AllocationCreated
from comuna_funding.domain.ledger import AccountSpec, NewTransfer
from comuna_funding.storage import repository
from comuna_funding.vocabulary import AccountKind, TransferCode
from comuna_platform.uow import Staged, UnitOfWork

log = logging.getLogger(__name__)

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
        key=f"treasury:{policy.funding_source}:{policy.currency}", currency=policy.currency, kind=AccountKind.SOURCE
    )


def earmark_spec(allocation_id: uuid.UUID, currency: str) -> AccountSpec:
    return AccountSpec(
        key=f"allocation:{allocation_id}",
        currency=currency,
        kind=AccountKind.COMMITMENT,
        debits_must_not_exceed_credits=True,
    )


@dataclass(frozen=True)
class Supersession:
    """A recount's certified result (version n+1 superseding n) of one commune."""

    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    version: int
    supersedes: int
    new_winner_candidate_id: uuid.UUID | None
    reason: str


async def record_supersession(uow: UnitOfWork, s: Supersession, policy: GrantPolicy) -> bool | None:
    """A recount of a commune this source already funded is recorded for review (issue 10 reverses
    and re-allocates; no money moves here). Returns whether the winner changed, or None when the
    commune was not funded by this source (the caller then funds the recount's winner, if any)."""
    allocation_id = ids.allocation_id_for(s.consultation_id, s.commune_id, policy.funding_source)
    allocation = await repository.allocation_by_id(uow.session, allocation_id)
    if allocation is None:
        return None
    changed = s.new_winner_candidate_id != allocation.candidate_id
    await repository.insert_supersession_if_absent(
        uow.session,
        {
            "allocation_id": allocation_id,
            "version": s.version,
            "supersedes": s.supersedes,
            "consultation_id": s.consultation_id,
            "commune_id": s.commune_id,
            "funded_candidate_id": allocation.candidate_id,
            "new_winner_candidate_id": s.new_winner_candidate_id,
            "winner_changed": changed,
            "reason": s.reason,
        },
    )
    return changed


async def allocate_grants(
    uow: UnitOfWork, consultation_id: uuid.UUID, winners: Sequence[Winner], policy: GrantPolicy
) -> list[uuid.UUID]:
    """Allocate `policy`'s grant to each winner not yet funded by that source; returns the new ids.

    Ids are derived from (consultation, commune, source), so a replay finds its allocations
    (and, in a race, its transfers) already there and allocates nothing twice, whichever event
    named the winner (one commune's result now, a whole certification in earlier versions).
    The consumer passes one winner per event; the batch form serves bulk callers and tests.
    """
    session = uow.session
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
            code=TransferCode.GRANT_ALLOCATION,
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
    await uow.stage_all(
        [
            Staged(
                AllocationCreated(
                    allocation_id=aid,
                    consultation_id=consultation_id,
                    commune_id=w.commune_id,
                    commune_code=w.commune_code,
                    candidate_id=w.candidate_id,
                    title=w.title,
                    amount_minor=policy.amount_minor,
                    currency=policy.currency,
                    funding_source=policy.funding_source,
                    transfer_id=transfers[aid].id,
                ),
                aggregate_id=str(aid),
                event_id=ids.event_id_of(aid),
            )
            for aid, w in new.items()
            if aid in inserted
        ]
    )
    return [aid for aid in new if aid in inserted]
