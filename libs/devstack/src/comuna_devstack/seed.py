"""A small demo territory: one state, one municipality, three communes, their councils and residents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the client imports the stack, which writes the dev seed from here
    from comuna_devstack.client import PlatformClient

STATE = "VE.13"
MUNICIPALITY = "VE.13.01"
COMMUNES = [
    ("C001", "Comuna Socialista Ataroa", "commune"),
    ("C002", "Comuna El Maizal", "commune"),
    ("C003", "Circuito Comunal Tamaca", "communal_circuit"),
]
COUNCILS_PER_COMMUNE = 2
RESIDENTS_PER_COUNCIL = 15


@dataclass(frozen=True)
class DemoResident:
    national_id: str
    birth_date: date
    council_code: str
    commune_code: str


def commune_code(local: str) -> str:
    return f"{MUNICIPALITY}.{local}"


def demo_residents() -> list[DemoResident]:
    """Deterministic residents; every tenth is 12 years old (registered, but not yet eligible)."""
    residents = []
    for c, (local, _, _) in enumerate(COMMUNES, start=1):
        for k in range(1, COUNCILS_PER_COMMUNE + 1):
            council = f"{commune_code(local)}.CC{k:02d}"
            for n in range(RESIDENTS_PER_COUNCIL):
                serial = c * 100_000 + k * 1_000 + n
                born = date(2014, 3, 1) if n % 10 == 9 else date(1950 + (serial % 50), 1 + serial % 12, 1 + serial % 28)
                residents.append(DemoResident(f"V{20_000_000 + serial}", born, council, commune_code(local)))
    return residents


def demo_territories() -> list[tuple[str, str, str, str | None]]:
    """(code, name, kind, parent_code) of the demo register, parents first."""
    territories: list[tuple[str, str, str, str | None]] = [
        ("VE", "Venezuela", "country", None),
        (STATE, "Lara", "state", "VE"),
        (MUNICIPALITY, "Iribarren", "municipality", STATE),
    ]
    for local, name, kind in COMMUNES:
        territories.append((commune_code(local), name, kind, MUNICIPALITY))
        for k in range(1, COUNCILS_PER_COMMUNE + 1):
            territories.append(
                (
                    f"{commune_code(local)}.CC{k:02d}",
                    f"Consejo Comunal {k} de {name}",
                    "communal_council",
                    commune_code(local),
                )
            )
    return territories


def staff_username(role: str, commune: str | None = None) -> str:
    """`operator`, `spokesperson-c001`, ...: one demo account per role (and per commune)."""
    return role if commune is None else f"{role}-{commune.lower()}"


# Table officers get their tables when the demo opens its consultation (`demo.grant_tables`):
# officer-1 each commune's electronic `T-<commune>` and paper `P-<commune>`, officer-2 the paper ones.
TABLE_OFFICERS = ("officer-1", "officer-2")


def demo_staff() -> list[dict[str, Any]]:
    """The demo's staff: who they are in Keycloak and what identity lets them do, and where."""
    staff: list[dict[str, Any]] = [
        _person("operator", "Olga", "Operadora", [("operator", "VE")]),
        # Nationwide, so `make bench` can register its own synthetic territory and census too.
        _person("registrar", "Rafael", "Registrador", [("registrar", "VE")]),
        _person("auditor", "Ana", "Auditora", [("auditor", "VE")]),
    ]
    for local, _, _ in COMMUNES:
        code = commune_code(local)
        staff.append(_person(staff_username("spokesperson", local), "Vocera", local, [("spokesperson", code)]))
        staff.append(_person(staff_username("overseer", local), "Contralor", local, [("overseer", code)]))
    staff.extend(_person(name, "Mesa", name, []) for name in TABLE_OFFICERS)
    return staff


def _person(username: str, first: str, last: str, assignments: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "username": username,
        "email": f"{username}@demo.comuna.invalid",
        "first_name": first,
        "last_name": last,
        "assignments": [{"role": role, "territory_code": code} for role, code in assignments],
    }


def dev_seed(*, demo_territory: bool = True) -> dict[str, Any]:
    """The seed file `comuna-identity keycloak sync --seed` reads in development. Without the
    demo territory: the country root and the nationwide staff only (for stacks whose tests
    register a territory of their own)."""
    territories = demo_territories()
    staff = demo_staff()
    if not demo_territory:
        territories = territories[:1]
        staff = [p for p in staff if all(a["territory_code"] == "VE" for a in p["assignments"])]
    return {
        "territories": [
            {"code": code, "name": name, "kind": kind, "parent_code": parent}
            for code, name, kind, parent in territories
        ],
        "staff": staff,
    }


def seed_residents(client: PlatformClient, registrar: str) -> dict[str, int]:
    """Register the demo census through identity's REST API; safe to run again (409 = exists).

    The territories are already there: `keycloak sync` put them in the register from the
    dev seed, before the staff assigned to them.
    """
    residents = demo_residents()
    body = {
        "residents": [
            {"national_id": r.national_id, "birth_date": r.birth_date.isoformat(), "council_code": r.council_code}
            for r in residents
        ]
    }
    client.call("POST", "identity", "/v1/residents:batch", as_user=registrar, json=body, expect=(201, 409))
    return {"territories": len(demo_territories()), "residents": len(residents)}
