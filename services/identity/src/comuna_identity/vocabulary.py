"""Identity's vocabulary: the kinds and statuses of territories, residents and voter rolls.

The lowest layer of the service: storage builds its CHECK constraints from these enums, the
domain decides with them, the REST schemas type their fields with them.
"""

from __future__ import annotations

from enum import StrEnum


class TerritoryKind(StrEnum):
    COUNTRY = "country"
    STATE = "state"
    MUNICIPALITY = "municipality"
    # An optional level between municipality and commune.
    PARISH = "parish"
    COMMUNE = "commune"
    # A commune not yet consolidated: it sits where a commune sits and holds councils the same way.
    COMMUNAL_CIRCUIT = "communal_circuit"
    COMMUNAL_COUNCIL = "communal_council"


class TerritoryStatus(StrEnum):
    ACTIVE = "active"
    # A dissolved unit keeps its id, code and history; nothing new may be placed under it.
    DISSOLVED = "dissolved"


# The kinds a consultation treats as communes (they hold councils and vote).
COMMUNE_KINDS = frozenset({TerritoryKind.COMMUNE, TerritoryKind.COMMUNAL_CIRCUIT})


class RollStatus(StrEnum):
    # Recorded; entry keys are being computed ahead of the cut-off (or right now, at it).
    PREPARING = "preparing"
    # Entries, counts and digest written; never changes again.
    FROZEN = "frozen"


class RollTerritoryKind(StrEnum):
    """What a row of `voter_roll_counts` counts."""

    COMMUNE = "commune"
    COUNCIL = "council"


class ResidentStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    DECEASED = "deceased"
