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
