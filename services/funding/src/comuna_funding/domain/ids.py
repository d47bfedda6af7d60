"""Deterministic ids (UUIDv5) for everything funding derives from an upstream fact.

An allocation, its transfer and its event are named by (consultation, commune, funding
source); a disbursement and its transfer by the milestone. Replaying an event, or receiving a
second copy of it under a new event id, therefore produces the same ids, and the unique keys
of the database turn the replay into a no-op instead of a second payment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from comuna_platform.ids import DeterministicIds

# Fixed forever: changing it would give every derived id a new value.
FUNDING_NAMESPACE = uuid.UUID("0b6f3c5e-9a51-4f0e-8a53-6d2f4c1e7a90")
_IDS = DeterministicIds(FUNDING_NAMESPACE)


def account_id_for(key: str) -> uuid.UUID:
    return _IDS.derive("account", key)


def allocation_id_for(consultation_id: uuid.UUID, commune_id: uuid.UUID, funding_source: str) -> uuid.UUID:
    return _IDS.derive("allocation", consultation_id, commune_id, funding_source)


def allocation_transfer_id_for(consultation_id: uuid.UUID, commune_id: uuid.UUID, funding_source: str) -> uuid.UUID:
    return _IDS.derive("allocation-transfer", consultation_id, commune_id, funding_source)


def disbursement_id_for(milestone_id: uuid.UUID) -> uuid.UUID:
    return _IDS.derive("disbursement", milestone_id)


def disbursement_transfer_id_for(milestone_id: uuid.UUID) -> uuid.UUID:
    return _IDS.derive("disbursement-transfer", milestone_id)


def event_id_for(subject: str, aggregate_id: uuid.UUID) -> uuid.UUID:
    """One event per (subject, aggregate): the outbox's unique event id absorbs any re-staging."""
    return _IDS.derive("event", subject, aggregate_id)


def event_id_of(aggregate_id: uuid.UUID) -> Callable[[str], uuid.UUID]:
    """`event_id` for the unit of work, which knows the subject from the event's contract."""
    return lambda subject: event_id_for(subject, aggregate_id)


def cofunded_allocation_id_for(
    consultation_id: uuid.UUID, commune_id: uuid.UUID, candidate_id: uuid.UUID, funder: str, generation: int
) -> uuid.UUID:
    """A co-funded allocation: one funder's money for one project, in one generation (a recount
    that changes it reverses it and allocates the next)."""
    return _IDS.derive("cofunded-allocation", consultation_id, commune_id, candidate_id, funder, generation)


def cofunded_transfer_id_for(allocation_id: uuid.UUID) -> uuid.UUID:
    return _IDS.derive("cofunded-transfer", allocation_id)


def allocation_reversal_id_for(allocation_id: uuid.UUID) -> uuid.UUID:
    return _IDS.derive("allocation-reversal", allocation_id)


def tranche_reservation_id_for(milestone_id: uuid.UUID) -> uuid.UUID:
    """The pending transfer that holds a milestone's tranche on its allocation's commitment."""
    return _IDS.derive("tranche-reservation", milestone_id)


def tranche_post_id_for(milestone_id: uuid.UUID) -> uuid.UUID:
    """The post of that reservation, once the milestone is verified."""
    return _IDS.derive("tranche-post", milestone_id)


def tranche_void_id_for(milestone_id: uuid.UUID) -> uuid.UUID:
    """The void of that reservation, when the project is cancelled."""
    return _IDS.derive("tranche-void", milestone_id)


def commitment_release_id_for(allocation_id: uuid.UUID) -> uuid.UUID:
    """The transfer that returns a cancelled project's unspent commitment to its funder (one per allocation)."""
    return _IDS.derive("commitment-release", allocation_id)


def commitment_post_id_for(allocation_id: uuid.UUID) -> uuid.UUID:
    """The post of a remote funder's pending commitment, once its source committed the money."""
    return _IDS.derive("commitment-post", allocation_id)


def commitment_void_id_for(allocation_id: uuid.UUID) -> uuid.UUID:
    """The void of a remote funder's pending commitment, when its source refused it."""
    return _IDS.derive("commitment-void", allocation_id)
