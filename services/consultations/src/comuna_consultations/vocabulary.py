"""Consultations' vocabulary, the lowest layer of the service: storage's CHECK constraints, the
domain, every slice and the REST schemas use these enums."""

from __future__ import annotations

from enum import StrEnum


class ConsultationStatus(StrEnum):
    """What the clock cannot know about a consultation (see `domain.lifecycle`).

    Since migration 0005 the phase (assemblies, registration closed, voting, tally,
    certification) follows the published dates on the server clock (`domain.phases`,
    `phase` in every consultation read); the stored status only says whether the results
    were certified: open -> certified."""

    OPEN = "open"
    CERTIFIED = "certified"


class HoldKind(StrEnum):
    """An operator's hold on one commune of a consultation, recorded before its voting opens."""

    EXCLUDED = "excluded"  # the commune does not vote in this consultation
    POSTPONED = "postponed"  # the commune votes in its own, later window


class ProposalCategory(StrEnum):
    """What a proposal (and the candidate made from it) is about."""

    WATER = "water"
    ELECTRICITY = "electricity"
    HEALTH = "health"
    EDUCATION = "education"
    ROADS = "roads"
    HOUSING = "housing"
    FOOD_PRODUCTION = "food_production"
    SPORTS = "sports"
    CULTURE = "culture"
    OTHER = "other"


class BallotChannel(StrEnum):
    """How a stored ballot row was cast. Paper tables store no ballot rows: their votes are the
    confirmed tally sheet's counts."""

    TABLE = "table"  # recorded by an officer at an electronic table
    ONLINE = "online"  # cast by the resident, signed in with Keycloak and linked to the census
    OFFLINE = "offline"  # recorded on an offline table's device and synced later


class ParticipationChannel(StrEnum):
    """Where a person took part (checked in): one participation per person per consultation."""

    TABLE = "table"
    ONLINE = "online"
    OFFLINE = "offline"
    PAPER = "paper"  # checked in at a paper table; the vote is in the table's tally sheet


class TableKind(StrEnum):
    """A voting table's way of recording votes."""

    ELECTRONIC = "electronic"  # the officer records each ballot through the API
    PAPER = "paper"  # check-ins through the API, votes by a confirmed tally sheet at close
    OFFLINE = "offline"  # a `comuna-table` device without connectivity that syncs later


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
