"""The roles of Comuna, one vocabulary for every service.

Identity stores who holds which role where (role assignments); every service authorizes with
these names. `SERVICE` is the one role read from the token itself: it marks a service
account's client-credentials token (Keycloak realm role `service`), which is not a person and
holds no assignments.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    # National operator: runs the consultation cycle everywhere.
    OPERATOR = "operator"
    # Regional official: one state.
    REGIONAL_OFFICIAL = "regional_official"
    # Municipal official: one municipality.
    MUNICIPAL_OFFICIAL = "municipal_official"
    # Registrar: keeps the register and the census of a territory, enrols residents.
    REGISTRAR = "registrar"
    # Commune spokesperson: one commune.
    SPOKESPERSON = "spokesperson"
    # Oversight committee member: one commune.
    OVERSEER = "overseer"
    # Voting-table officer: one table of one consultation (the assignment holds its commune).
    TABLE_OFFICER = "table_officer"
    # Auditor: reads everything, changes nothing.
    AUDITOR = "auditor"
    # Resident: a person linked to their census record (enrolment); territory = their council.
    RESIDENT = "resident"


# Not an assignment: the token role of a service account (client credentials).
SERVICE_ROLE = "service"

# Roles whose assignment is nationwide (held at the country root).
NATIONAL_ROLES = frozenset({Role.OPERATOR, Role.AUDITOR})
