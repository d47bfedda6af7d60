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
