"""Deterministic ids (UUIDv5) for everything funding derives from an upstream fact.

An allocation, its transfer and its event are named by (consultation, commune, funding
source); a disbursement and its transfer by the milestone. Replaying an event, or receiving a
second copy of it under a new event id, therefore produces the same ids, and the unique keys
of the database turn the replay into a no-op instead of a second payment.
"""

from __future__ import annotations

import uuid

# Fixed forever: changing it would give every derived id a new value.
FUNDING_NAMESPACE = uuid.UUID("0b6f3c5e-9a51-4f0e-8a53-6d2f4c1e7a90")


def _derive(*parts: object) -> uuid.UUID:
    return uuid.uuid5(FUNDING_NAMESPACE, "/".join(str(p) for p in parts))


def account_id_for(key: str) -> uuid.UUID:
    return _derive("account", key)


def allocation_id_for(consultation_id: uuid.UUID, commune_id: uuid.UUID, funding_source: str) -> uuid.UUID:
    return _derive("allocation", consultation_id, commune_id, funding_source)


def allocation_transfer_id_for(consultation_id: uuid.UUID, commune_id: uuid.UUID, funding_source: str) -> uuid.UUID:
    return _derive("allocation-transfer", consultation_id, commune_id, funding_source)


def disbursement_id_for(milestone_id: uuid.UUID) -> uuid.UUID:
    return _derive("disbursement", milestone_id)


def disbursement_transfer_id_for(milestone_id: uuid.UUID) -> uuid.UUID:
    return _derive("disbursement-transfer", milestone_id)


def event_id_for(subject: str, aggregate_id: uuid.UUID) -> uuid.UUID:
    """One event per (subject, aggregate): the outbox's unique event id absorbs any re-staging."""
    return _derive("event", subject, aggregate_id)


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID in `value`, or None. Callers pass the parsed value on, so differently
    formatted spellings of one id (upper case, braces) still derive the same ids."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
