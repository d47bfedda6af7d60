"""The register with history, against real PostgreSQL and NATS: a move, a promotion and a rename,
read as of days before and after, and scope checks that follow the parent links in force."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from comuna.identity.v1 import events_pb2
from comuna_identity.domain import territories
from comuna_identity.storage.models import TerritoryVersion
from comuna_platform.auth.roles import Role
from tests.identity.authority import OPERATOR, REGISTRAR, grant, person, seed_staff
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

TODAY = datetime.now(UTC).date()
PAST = TODAY - timedelta(days=10)
FUTURE = TODAY + timedelta(days=30)
SINCE = date(2020, 1, 1)
_numbers = itertools.count(7_100_000)
_trees = itertools.count(1)


async def tree(service: RunningService, issuer: TestIssuer, tag: str) -> dict[str, str]:
    """A state, a municipality, two communes, a circuit and councils, all from 2020-01-01. Codes
    are names (no dots): where a unit sits is only its parent link."""
    await seed_staff(service)
    codes = {name: f"{tag}{name}" for name in ("ST", "MU", "C1", "C2", "CI", "CC1", "CC2", "CC3")}
    rows = [
        ("ST", "Lara", "state", None),
        ("MU", "Iribarren", "municipality", "ST"),
        ("C1", "Comuna Uno", "commune", "MU"),
        ("C2", "Comuna Dos", "commune", "MU"),
        ("CI", "Circuito Tres", "communal_circuit", "MU"),
        ("CC1", "Consejo Uno", "communal_council", "C1"),
        ("CC2", "Consejo Dos", "communal_council", "C1"),
        ("CC3", "Consejo Tres", "communal_council", "CI"),
    ]
    for key, name, kind, parent in rows:
        body = {
            "code": codes[key],
            "name": name,
            "kind": kind,
            "parent_code": codes[parent] if parent else "VE",
            "valid_from": SINCE.isoformat(),
        }
        response = await service.client.post("/v1/territories", json=body, headers=person(issuer, OPERATOR))
        assert response.status_code == 201, response.text
    return codes


async def change(service: RunningService, issuer: TestIssuer, code: str, **body: Any) -> Any:
    return await service.client.post(f"/v1/territories/{code}:change", json=body, headers=person(issuer, REGISTRAR))


async def ancestors(service: RunningService, code: str, day: date) -> list[str]:
    response = await service.client.get(f"/v1/territories/{code}", params={"as_of": day.isoformat()})
    assert response.status_code == 200, response.text
    return [a["code"] for a in response.json()["ancestors"]]


async def register_resident(service: RunningService, issuer: TestIssuer, subject: str, council: str) -> Any:
    body = {"national_id": f"V-{next(_numbers)}", "birth_date": "1990-01-01", "council_code": council}
    return await service.client.post("/v1/residents", json=body, headers=person(issuer, subject))


async def test_a_moved_council_reads_and_scopes_by_the_links_in_force(
    identity: RunningService, issuer: TestIssuer
) -> None:
    c = await tree(identity, issuer, "MV")
    # CC1 moved ten days ago; CC2 moves in a month.
    assert (
        await change(identity, issuer, c["CC1"], valid_from=PAST.isoformat(), parent_code=c["C2"])
    ).status_code == 200
    moved = await change(identity, issuer, c["CC2"], valid_from=FUTURE.isoformat(), parent_code=c["C2"])
    assert moved.status_code == 200, moved.text
    assert moved.json()["changed"] is True

    before, after = PAST - timedelta(days=1), PAST
    assert await ancestors(identity, c["CC1"], before) == ["VE", c["ST"], c["MU"], c["C1"]]
    assert await ancestors(identity, c["CC1"], after) == ["VE", c["ST"], c["MU"], c["C2"]]
    assert await ancestors(identity, c["CC2"], TODAY) == ["VE", c["ST"], c["MU"], c["C1"]]
    assert await ancestors(identity, c["CC2"], FUTURE) == ["VE", c["ST"], c["MU"], c["C2"]]
    detail = (await identity.client.get(f"/v1/territories/{c['CC1']}")).json()
    assert [(v["valid_from"], v["valid_until"]) for v in detail["history"]] == [
        (SINCE.isoformat(), PAST.isoformat()),
        (PAST.isoformat(), None),
    ]
    children = await identity.client.get(
        "/v1/territories", params={"parent_code": c["C2"], "as_of": before.isoformat()}
    )
    assert [t["code"] for t in children.json()["items"]] == []
    children = await identity.client.get(
        "/v1/territories", params={"parent_code": c["C2"], "as_of": FUTURE.isoformat()}
    )
    assert [t["code"] for t in children.json()["items"]] == [c["CC1"], c["CC2"]]

    # Scope is judged on today's links: CC1 is now C2's, CC2 still C1's.
    old, new = f"registrar-{c['C1']}", f"registrar-{c['C2']}"
    await grant(identity, old, Role.REGISTRAR, c["C1"])
    await grant(identity, new, Role.REGISTRAR, c["C2"])
    assert (await register_resident(identity, issuer, new, c["CC1"])).status_code == 201
    refused = await register_resident(identity, issuer, old, c["CC1"])
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_territory")
    assert (await register_resident(identity, issuer, old, c["CC2"])).status_code == 201
    refused = await register_resident(identity, issuer, new, c["CC2"])
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_territory")

    # The domain's lineage on the move's eve and day (what CENSUS and ROLL build on).
    async with identity.runtime.db.transaction() as session:
        unit = (await session.execute(text("SELECT id FROM territories WHERE code = :c"), {"c": c["CC1"]})).scalar_one()
        assert [t.code for t in await territories.lineage(session, unit, before)][-2] == c["C1"]
        assert [t.code for t in await territories.lineage(session, unit, after)][-2] == c["C2"]
        pairs = dict((await session.execute(territories.council_communes(before))).all())
        assert pairs[unit] != dict((await session.execute(territories.council_communes(after))).all())[unit]


async def test_a_promotion_and_a_rename_keep_the_unit_and_its_history(
    identity: RunningService, issuer: TestIssuer
) -> None:
    c = await tree(identity, issuer, "PR")
    promoted = await change(identity, issuer, c["CI"], valid_from=PAST.isoformat(), kind="commune", name="Comuna Tres")
    assert promoted.status_code == 200, promoted.text
    before = (await identity.client.get(f"/v1/territories/{c['CI']}", params={"as_of": "2021-06-01"})).json()
    after = (await identity.client.get(f"/v1/territories/{c['CI']}")).json()
    assert (before["kind"], before["name"]) == ("communal_circuit", "Circuito Tres")
    assert (after["kind"], after["name"]) == ("commune", "Comuna Tres")
    assert before["id"] == after["id"]
    # The council under it keeps its place through the promotion.
    assert await ancestors(identity, c["CC3"], TODAY) == ["VE", c["ST"], c["MU"], c["CI"]]

    # Its registrar still covers its council: scope follows the unit, not its kind or name.
    local = f"registrar-{c['CI']}"
    await grant(identity, local, Role.REGISTRAR, c["CI"])
    assert (await register_resident(identity, issuer, local, c["CC3"])).status_code == 201

    # The same change again writes nothing and says so.
    again = await change(identity, issuer, c["CI"], valid_from=TODAY.isoformat(), kind="commune", name="Comuna Tres")
    assert (again.status_code, again.json()["changed"]) == (200, False)
    async with identity.runtime.db.transaction() as session:
        unit = uuid.UUID(after["id"])
        versions = await session.execute(
            select(func.count()).select_from(TerritoryVersion).where(TerritoryVersion.territory_id == unit)
        )
        assert versions.scalar_one() == 2


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        # History is extended, never rewritten before the latest version.
        ("CC1", {"valid_from": "2019-01-01", "name": "Antes"}, 409, "territory_history_conflict"),
        ("CC1", {"valid_from": TODAY.isoformat(), "parent_code": "ST"}, 422, "territory_parent_invalid"),
        ("C1", {"valid_from": TODAY.isoformat(), "status": "dissolved"}, 422, "territory_has_children"),
        ("C1", {"valid_from": TODAY.isoformat(), "kind": "communal_council"}, 422, "territory_parent_invalid"),
        ("CC1", {"valid_from": TODAY.isoformat(), "parent_code": "NOWHERE"}, 404, "territory_not_found"),
        ("CC1", {"valid_from": "2026-02-30", "name": "X"}, 422, "validation_error"),
        ("CC1", {"valid_from": TODAY.isoformat(), "kind": "planet"}, 422, "validation_error"),
    ],
)
async def test_bad_changes_are_refused_and_write_nothing(
    identity: RunningService, issuer: TestIssuer, key: str, body: dict[str, Any], status: int, code: str
) -> None:
    c = await tree(identity, issuer, f"BAD{next(_trees)}")
    if body.get("parent_code") in c:
        body = {**body, "parent_code": c[body["parent_code"]]}
    async with identity.runtime.db.transaction() as session:
        before = (await session.execute(select(func.count()).select_from(TerritoryVersion))).scalar_one()
    response = await change(identity, issuer, c[key], **body)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    async with identity.runtime.db.transaction() as session:
        assert (await session.execute(select(func.count()).select_from(TerritoryVersion))).scalar_one() == before


async def test_a_registrar_changes_only_inside_their_territory(identity: RunningService, issuer: TestIssuer) -> None:
    c = await tree(identity, issuer, "SC")
    local = f"registrar-{c['C1']}"
    await grant(identity, local, Role.REGISTRAR, c["C1"])
    headers = person(issuer, local)
    inside = await identity.client.post(
        f"/v1/territories/{c['CC1']}:change", json={"valid_from": TODAY.isoformat(), "name": "Nuevo"}, headers=headers
    )
    assert inside.status_code == 200, inside.text
    # Moving it out of C1 needs C2 too.
    out = await identity.client.post(
        f"/v1/territories/{c['CC1']}:change",
        json={"valid_from": TODAY.isoformat(), "parent_code": c["C2"]},
        headers=headers,
    )
    assert (out.status_code, out.json()["code"]) == (403, "forbidden_territory")


async def test_a_change_is_announced_with_its_day(identity: RunningService, issuer: TestIssuer) -> None:
    c = await tree(identity, issuer, "EV")
    subscription = await identity.runtime.nats.subscribe("identity.territory.changed")
    try:
        await identity.runtime.nats.flush()
        response = await change(identity, issuer, c["CC2"], valid_from=PAST.isoformat(), parent_code=c["C2"])
        assert response.status_code == 200
        while True:
            message = await subscription.next_msg(timeout=10)
            event = events_pb2.TerritoryChanged.FromString(message.data)
            if event.territory.code == c["CC2"]:
                break
        parent = str(response.json()["parent_id"])
        assert (event.valid_from, event.status, event.parent_id) == (PAST.isoformat(), "active", parent)
    finally:
        await subscription.unsubscribe()
