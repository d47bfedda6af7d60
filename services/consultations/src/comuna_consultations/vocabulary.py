"""Consultations' vocabulary, the lowest layer of the service: storage's CHECK constraints, the
domain, every slice and the REST schemas use these enums."""

from __future__ import annotations

from enum import StrEnum


class ConsultationStatus(StrEnum):
    """assembly -> voting -> closed -> certified (see `domain.lifecycle`)."""

    ASSEMBLY = "assembly"
    VOTING = "voting"
    CLOSED = "closed"
    CERTIFIED = "certified"


class BallotChannel(StrEnum):
    TABLE = "table"  # cast by a polling officer at a table
    ONLINE = "online"  # submitted by a gateway that authenticated the voter (a service)


class IneligibilityReason(StrEnum):
    """Why identity found a voter ineligible (shown in the `voter_ineligible` problem)."""

    NOT_REGISTERED = "not_registered"
    UNDER_AGE = "under_age"
    OTHER_COMMUNE = "other_commune"
    # An answer this version does not know (a newer identity): still a refusal.
    OTHER = "other"
