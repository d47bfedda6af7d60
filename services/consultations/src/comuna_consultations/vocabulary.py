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


class RollLoadStatus(StrEnum):
    """requested -> loading -> verified | refused (see `roll.loader`)."""

    # Asked identity to freeze it; identity is still preparing or freezing.
    REQUESTED = "requested"
    # Frozen by identity; entries being pulled into `roll_entries`.
    LOADING = "loading"
    # Every entry stored, count and digest equal to identity's: voting may start.
    VERIFIED = "verified"
    # Count or digest differ from what identity published: never used for voting.
    REFUSED = "refused"
