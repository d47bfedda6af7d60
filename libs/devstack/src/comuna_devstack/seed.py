"""A small demo territory: one state, one municipality, three communes, their councils and residents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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


def seed(client: PlatformClient, registrar: str) -> dict[str, int]:
    """Create the territory and census through identity's REST API; safe to run again (409 = exists)."""
    territories = [
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
    for code, name, kind, parent in territories:
        client.call(
            "POST",
            "identity",
            "/v1/territories",
            as_user=registrar,
            expect=(201, 409),
            json={"code": code, "name": name, "kind": kind, "parent_code": parent},
        )
    residents = demo_residents()
    body = {
        "residents": [
            {"national_id": r.national_id, "birth_date": r.birth_date.isoformat(), "council_code": r.council_code}
            for r in residents
        ]
    }
    client.call("POST", "identity", "/v1/residents:batch", as_user=registrar, json=body, expect=(201, 409))
    return {"territories": len(territories), "residents": len(residents)}
