"""A consultation laid out with centres and tables, and the server clock the tests move."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from comuna_platform.auth.roles import Role
from comuna_platform.clock import ManualClock
from tests.consultations.helpers import (
    ADULT,
    CHILD,
    Consultation,
    Stack,
    add_candidate,
    open_consultation,
    operator,
    register_residents,
    start_voting,
)
from tests.support.identity import person, subject_of
from tests.support.issuer import TestIssuer

C1, C2, C3 = "VE.01.01.C1", "VE.01.01.C2", "VE.01.02.C3"

HEADER = "centre_code,centre_name,address,commune_code,table_code,table_kind"
# One centre serving two communes; a table of each kind in C1, a paper table in C2.
LAYOUT = [
    f"CV1,Escuela Bolivariana,Calle 1,{C1},E1,electronic",
    f"CV1,Escuela Bolivariana,Calle 1,{C1},P1,paper",
    f"CV1,Escuela Bolivariana,Calle 1,{C1},O1,offline",
    f"CV1,Escuela Bolivariana,Calle 1,{C2},P2,paper",
    f"CV2,Casa Comunal,,{C2},E2,electronic",
]


def csv_body(lines: list[str]) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


def clock_of(stack: Stack) -> ManualClock:
    """The consultations service's server clock (the stack's ManualClock), set to now."""
    stack.clock.set(datetime.now(UTC))
    return stack.clock


async def import_layout(
    stack: Stack, consultation_id: str, body: bytes | list[dict[str, Any]], headers: dict[str, str]
) -> httpx.Response:
    url = f"/v1/consultations/{consultation_id}/voting-centres:import"
    if isinstance(body, bytes):
        return await stack.consultations.client.post(url, content=body, headers={**headers, "content-type": "text/csv"})
    return await stack.consultations.client.post(url, json=body, headers=headers)


@dataclass
class Voters:
    c1: list[str]
    c2: list[str]
    child: str
    unregistered: str


@dataclass
class Laid:
    consultation: Consultation
    voters: Voters
    opens_at: datetime
    closes_at: datetime
    officers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.consultation.id


async def officer_of(stack: Stack, consultation_id: str, commune: str, table: str, n: int = 1) -> dict[str, str]:
    """The n-th officer of `table` (a person of their own, holding only that assignment)."""
    subject = str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{subject_of(Role.TABLE_OFFICER, commune, consultation_id, table)}/{n}")
    )
    await stack.authority.grant(subject, Role.TABLE_OFFICER, commune, consultation_id=consultation_id, table_code=table)
    return person(stack.authority.issuer, subject)


async def laid_out_consultation(stack: Stack, issuer: TestIssuer, *, c1_voters: int = 4) -> Laid:
    """Candidates (C1: two, C2: one), voters registered, the LAYOUT imported, the roll frozen and
    voting started; the clock inside the voting window."""
    clock = clock_of(stack)
    consultation = await open_consultation(stack, issuer)
    for commune, n in ((C1, 2), (C2, 1)):
        for priority in range(1, n + 1):
            assert (await add_candidate(stack, issuer, consultation, commune, priority)).status_code == 201
    voters = Voters(
        c1=await register_residents(stack, issuer, f"{C1}.CC1", ADULT, c1_voters),
        c2=await register_residents(stack, issuer, f"{C2}.CC1", ADULT, 1),
        child=(await register_residents(stack, issuer, f"{C1}.CC1", CHILD, 1))[0],
        unregistered=stack.new_voter_id(),
    )
    response = await import_layout(stack, consultation.id, csv_body(LAYOUT), operator(issuer))
    assert response.status_code == 200, response.text
    await start_voting(stack, issuer, consultation)
    state = (await stack.consultations.client.get(f"/v1/consultations/{consultation.id}")).json()
    laid = Laid(
        consultation,
        voters,
        datetime.fromisoformat(state["voting_opens_at"]),
        datetime.fromisoformat(state["voting_closes_at"]),
    )
    clock.set(laid.opens_at + timedelta(hours=1))
    return laid


def close_voting(stack: Stack, laid: Laid) -> None:
    clock = stack.consultations.runtime.clock
    assert isinstance(clock, ManualClock)
    clock.set(laid.closes_at + timedelta(minutes=5))


async def count(stack: Stack, table: str, consultation_id: str, where: str = "true") -> int:
    async with stack.consultations.runtime.db.transaction() as session:
        result = await session.execute(
            text(f"SELECT count(*) FROM {table} WHERE consultation_id = :id AND {where}"),
            {"id": uuid.UUID(consultation_id)},
        )
        return int(result.scalar_one())
