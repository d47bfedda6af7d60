"""The authorization matrix: every REST operation and every gRPC method of every service, with
every role inside and outside its territory, and with no token, an expired token and a token
of another realm (real Keycloak tokens; real identity assignments; the world of
`authorization_world`).

Operations are enumerated from each service's OpenAPI document and methods from the gRPC
service descriptors, so a new endpoint is in the matrix without touching this file. Which
roles an operation admits is read from its route (the `require_assignment` dependency, via
`admitted_roles`); only the few whose use case decides the roles (a `CurrentCaller` route)
say so in their factory, and they name the code that decides. How to make a valid request
(ids inside or outside, a body) is one small factory per operation, keyed by operationId; an
operation without one fails with its name.

REST, per protected operation: no token, expired, other realm -> 401; each role it does not
admit -> 403 forbidden_role; each admitted role held outside the object's territory (and a
table officer of the object's commune for another consultation) -> 403 forbidden_territory, or
the operation's documented hiding refusal, and nothing written; inside -> neither 401 nor 403
nor 5xx. Public operations: anonymous is neither 401 nor 403.
gRPC, per method: each service's client-credentials token is let in iff the contract lists
it in `allowed_callers` (PERMISSION_DENIED otherwise); a person's token -> PERMISSION_DENIED;
no token, expired, other realm -> UNAUTHENTICATED.
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.api import cofunding_routes
from comuna_identity.domain import rules
from comuna_platform.auth.allow_list import declared_callers
from comuna_platform.auth.fastapi import admitted_roles, bearer_principal, current_caller
from comuna_platform.auth.roles import Role
from comuna_platform.http import create_app
from comuna_platform.runtime import service_routers
from tests.integration.authorization_world import (
    BIRTH_DATE,
    COUNCIL,
    INSIDE,
    OUTSIDE,
    SERVICES,
    TABLE,
    TABLES,
    World,
    has_outside,
    running_world,
)
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio(loop_scope="session")

Place = str  # INSIDE, OUTSIDE or OTHER_CONSULTATION
# INSIDE's objects, asked by a table officer of INSIDE for another consultation.
OTHER_CONSULTATION = "other-consultation"


@dataclass(frozen=True)
class Request:
    path: dict[str, str] = field(default_factory=dict)
    json: Any = None
    params: dict[str, str] | None = None
    # A body that is not JSON (a CSV file), sent with its media type.
    content: bytes | None = None
    content_type: str | None = None


Build = Callable[[World, Place], Awaitable[Request]]


@dataclass(frozen=True)
class Factory:
    """How to make a valid request of one operation, inside or outside the caller's territory."""

    build: Build
    # Only for routes whose use case decides the roles (no `require_assignment` on the route):
    # the roles it admits, taken from the code that decides.
    admits: frozenset[Role] | None = None
    # False when the operation concerns no one territory, or filters what it answers rather
    # than refusing: it has no "outside" case.
    scoped: bool = True
    # Its refusal when it hides the object from whoever may not act on it (status, problem
    # code), instead of 403 forbidden_role / forbidden_territory.
    hides: tuple[int, str] | None = None


def fixed(request: Request | None = None) -> Build:
    async def build(world: World, place: Place) -> Request:
        return request or Request()

    return build


def ids(build: Callable[[World, Place], dict[str, str]]) -> Build:
    async def wrapped(world: World, place: Place) -> Request:
        return Request(path=build(world, place))

    return wrapped


# -- identity ---------------------------------------------------------------------------------
async def _territory(world: World, place: Place) -> Request:
    n = world.fresh()
    body = {"code": f"{place}.M{n}", "name": f"Consejo {n}", "kind": "communal_council", "parent_code": place}
    return Request(json=body)


async def _change_territory(world: World, place: Place) -> Request:
    # A rename of the council from today on: an act in its commune (`place`).
    today = datetime.now(UTC).date().isoformat()
    return Request(path={"code": COUNCIL[place]}, json={"valid_from": today, "name": f"Consejo {world.fresh()}"})


async def _import_territories(world: World, place: Place) -> Request:
    n = world.fresh()
    row = {"code": f"IMP{n}", "name": f"Consejo {n}", "kind": "communal_council", "parent_code": INSIDE}
    return Request(json=[{**row, "valid_from": datetime.now(UTC).date().isoformat()}])


def _resident(world: World, place: Place) -> dict[str, str]:
    return {"national_id": world.national_id(), "birth_date": BIRTH_DATE, "council_code": COUNCIL[place]}


async def _register(world: World, place: Place) -> Request:
    return Request(json=_resident(world, place))


async def _register_batch(world: World, place: Place) -> Request:
    return Request(json={"residents": [_resident(world, place)]})


async def _import(world: World, place: Place) -> Request:
    item = {
        "document_type": "V",
        "document_number": world.national_id(),
        "birth_date": BIRTH_DATE,
        "council_code": COUNCIL[place],
        "valid_from": "2020-01-01",
    }
    return Request(json=[item])


async def _move(world: World, place: Place) -> Request:
    # To the council they already live in: allowed inside (nothing moves), refused outside.
    body = {"national_id": await world.resident(place), "council_code": COUNCIL[place], "valid_from": "2020-01-01"}
    return Request(json=body)


async def _grant(world: World, place: Place) -> Request:
    return Request(json={"subject": str(uuid.uuid4()), "role": "spokesperson", "territory_code": place})


async def _revoke(world: World, place: Place) -> Request:
    return Request(path={"assignment_id": await world.assignment(place)}, json={"reason": "matrix"})


async def _link(world: World, place: Place) -> Request:
    return Request(json={"national_id": await world.resident(place), "subject": str(uuid.uuid4())})


async def _enrolment_code(world: World, place: Place) -> Request:
    return Request(json={"national_id": await world.resident(place)})


async def _redeem(world: World, place: Place) -> Request:
    national_id, code = await world.enrolment_code(place)
    return Request(json={"national_id": national_id, "code": code})


# -- consultations ----------------------------------------------------------------------------
async def _my_roll(world: World, place: Place) -> Request:
    return Request(params={"consultation_id": world.consultations["voting"].id})


def _consultation(name: str) -> Build:
    return ids(lambda world, place: {"consultation_id": world.consultations[name].id})


async def _open(world: World, place: Place) -> Request:
    year = 2100 + world.fresh()
    body = {
        "code": f"{year}-Q1",
        "title": f"Matriz {year}",
        "assemblies_open_at": f"{year}-01-01T00:00:00Z",
        "candidates_close_at": f"{year}-01-15T00:00:00Z",
        "roll_cutoff_at": f"{year}-01-20T00:00:00Z",
        "voting_opens_at": f"{year}-02-01T00:00:00Z",
        "voting_closes_at": f"{year}-02-02T00:00:00Z",
        "certification_opens_at": f"{year}-02-03T00:00:00Z",
    }
    return Request(json=body)


async def _candidate(world: World, place: Place) -> Request:
    assembly = world.consultations["assembly"]
    return Request(
        path={"consultation_id": assembly.id, "commune_id": assembly.communes[place]},
        json={
            "title": "Cancha deportiva",
            "description": "Matriz",
            "assembly_priority": world.fresh(),
            "category": "sports",
            "estimated_cost": 100_000,
        },
    )


async def _amend(world: World, place: Place) -> Request:
    moving = world.consultations["moving"]
    later = world.clock.now() + timedelta(days=40 + world.fresh())
    return Request(
        path={"consultation_id": moving.id}, json={"reason": "matrix", "voting_closes_at": later.isoformat()}
    )


async def _hold(world: World, place: Place) -> Request:
    moving = world.consultations["moving"]
    return Request(
        path={"consultation_id": moving.id, "commune_id": moving.communes[place]},
        json={"kind": "excluded", "reason": "matrix"},
    )


async def _assembly_session(world: World, place: Place) -> Request:
    assembly = world.consultations["assembly"]
    return Request(
        path={"consultation_id": assembly.id, "commune_id": assembly.communes[place]},
        json={
            "held_at": (world.clock.now() - timedelta(hours=1)).isoformat(),
            "place": "Casa comunal",
            "attendance": 30,
            "minutes": "Matriz",
            "proposals": [
                {
                    "title": "Cancha",
                    "problem": "Matriz",
                    "category": "sports",
                    "estimated_cost": 100_000,
                    "proposing_council_id": str(uuid.uuid4()),
                }
            ],
        },
    )


async def _prioritise(world: World, place: Place) -> Request:
    assembly = world.consultations["assembly"]
    return Request(
        path={"consultation_id": assembly.id, "commune_id": assembly.communes[place]},
        json={"proposal_ids": [str(uuid.uuid4())]},  # unknown: 404 for who may, 403 for who may not
    )


async def _ballot(world: World, place: Place) -> Request:
    voting = world.consultations["voting"]
    body = {
        "commune_id": voting.communes[place],
        "candidate_id": voting.candidates[place][0],
        "national_id": await world.voter(place),
        "channel": "table",
        "table_code": TABLES[place],
    }
    return Request(path={"consultation_id": voting.id}, json=body)


def _layout_row(world: World, place: Place) -> dict[str, str]:
    n = world.fresh()
    return {
        "centre_code": f"CM{n}",
        "centre_name": f"Escuela {n}",
        "address": "",
        "commune_code": place,
        "table_code": f"TM{n}",
        "table_kind": "paper",
    }


async def _import_layout(world: World, place: Place) -> Request:
    # Into `assembly`: centres and tables are laid out before voting opens.
    return Request(path={"consultation_id": world.consultations["assembly"].id}, json=[_layout_row(world, place)])


async def _add_table(world: World, place: Place) -> Request:
    return Request(path={"consultation_id": world.consultations["assembly"].id}, json=_layout_row(world, place))


async def _add_centre(world: World, place: Place) -> Request:
    n = world.fresh()
    body = {"code": f"CC{n}", "name": f"Liceo {n}", "commune_codes": [place]}
    return Request(path={"consultation_id": world.consultations["assembly"].id}, json=body)


def _at_table(body: Callable[[World], Any] | None = None) -> Build:
    """At `voting`'s table of the place (its officer acts at INSIDE's; the other is outside)."""

    async def build(world: World, place: Place) -> Request:
        path = {"consultation_id": world.consultations["voting"].id, "table_code": TABLES[place]}
        return Request(path=path, json=body(world) if body is not None else None)

    return build


def _document(world: World) -> dict[str, str]:
    return {"national_id": world.national_id()}


def _tally_sheet(world: World) -> dict[str, Any]:
    return {"votes": [], "blank": 0, "null": 0, "checked_in": 0, "scan_sha256": "0" * 64}


# An officer of another table (of this or another consultation) is refused so, not as forbidden_territory.
FORBIDDEN_TABLE = (403, "forbidden_table")
# `domain.tables` decides, for every table endpoint and the ballot: an officer of THIS table.
AT_TABLE = frozenset({Role.TABLE_OFFICER})


def _certified_commune(world: World, place: Place) -> dict[str, str]:
    certified = world.consultations["certified"]
    return {"consultation_id": certified.id, "commune_id": certified.communes[INSIDE]}


async def _with_reason(world: World, place: Place) -> Request:
    return Request(path=_certified_commune(world, place), json={"reason": "Matriz"})


async def _tie_break(world: World, place: Place) -> Request:
    return Request(path={"consultation_id": world.consultations["assembly"].id}, json={"rules": ["lower_cost", "draw"]})


# -- funding ----------------------------------------------------------------------------------
async def _open_account(world: World, place: Place) -> Request:
    return Request(json={"key": f"commune:{uuid.uuid4()}:USD", "currency": "USD", "kind": "commune"})


def _one_cent(world: World) -> dict[str, object]:
    """A fresh cent from one commune's earmark to the other's: every admitted caller moves one."""
    return {
        "id": str(uuid.uuid4()),
        "debit_account_id": world.allocations[INSIDE][1],
        "credit_account_id": world.allocations[OUTSIDE][1],
        "amount_minor": 1,
        "currency": "USD",
        "code": "matrix_check",
    }


async def _transfer(world: World, place: Place) -> Request:
    return Request(json=_one_cent(world))


async def _transfer_batch(world: World, place: Place) -> Request:
    return Request(json={"transfers": [_one_cent(world), _one_cent(world)]})


FUNDER_OFFICIALS = frozenset(cofunding_routes.PLEDGERS)
# A pledge funder where the place is (its municipality): officials there may pledge for it.
PLEDGE_FUNDERS = {INSIDE: ("matrix_pledge_in", "VE.01.01"), OUTSIDE: ("matrix_pledge_out", "VE.02.01")}


async def _pledge(world: World, place: Place) -> Request:
    name, territory = PLEDGE_FUNDERS[OUTSIDE if place == OUTSIDE else INSIDE]
    body = {"name": name, "display_name": name, "kind": "pledge", "currency": "USD", "territory_code": territory}
    registered = await world.services["funding"].client.post("/v1/funders", json=body, headers=world.builder())
    assert registered.status_code in (200, 201), registered.text
    return Request(path={"name": name}, json={"id": str(uuid.uuid4()), "amount_minor": 100})


async def _deposit(world: World, place: Place) -> Request:
    """A deposit of a cent against a cent pledged just before (deposits never exceed pledges)."""
    pledge = await _pledge(world, place)
    pledged = await world.services["funding"].client.post(
        f"/v1/funders/{pledge.path['name']}/pledges", json=pledge.json, headers=world.builder()
    )
    assert pledged.status_code == 201, pledged.text
    return Request(path=pledge.path, json={"id": str(uuid.uuid4()), "amount_minor": 1})


async def _funder(world: World, place: Place) -> Request:
    body = {
        "name": "matrix_funder",
        "display_name": "Matriz",
        "kind": "pledge",
        "currency": "USD",
        "territory_code": "VE",
    }
    return Request(json=body)


async def _rules(world: World, place: Place) -> Request:
    return Request(path={"consultation_id": str(uuid.uuid4())}, json={"rules": []})


async def _close_account(world: World, place: Place) -> Request:
    opened = await world.services["funding"].client.post(
        "/v1/accounts", json=(await _open_account(world, place)).json, headers=world.headers(Role.OPERATOR)
    )
    return Request(path={"account_id": opened.json()["id"]})


async def _statement(world: World, place: Place) -> Request:
    """A statement of a fresh source account with one line of today: each admitted caller imports one."""
    operator = world.headers(Role.OPERATOR)
    opened = await world.services["funding"].client.post(
        "/v1/accounts",
        json={"key": f"source:{uuid.uuid4().hex[:12]}:USD", "currency": "USD", "kind": "source"},
        headers=operator,
    )
    assert opened.status_code == 201, opened.text
    day = datetime.now(UTC).date().isoformat()
    return Request(
        path={"account_id": opened.json()["id"]},
        content=f"date,reference,amount_minor,currency,direction\n{day},matrix,1,USD,debit\n".encode(),
        content_type="text/csv",
    )


async def _imported_statement(world: World, place: Place) -> dict[str, str]:
    request = await _statement(world, place)
    imported = await world.services["funding"].client.post(
        "/v1/accounts/{account_id}/statements".format(**request.path),
        content=request.content,
        headers={**world.headers(Role.OPERATOR), "content-type": "text/csv"},
    )
    assert imported.status_code == 201, imported.text
    return {"account_id": request.path["account_id"], "statement_id": imported.json()["id"]}


async def _statement_report(world: World, place: Place) -> Request:
    return Request(path=await _imported_statement(world, place))


async def _statement_items(world: World, place: Place) -> Request:
    return Request(path=await _imported_statement(world, place), params={"list": "unmatched_in_statement"})


# -- projects ---------------------------------------------------------------------------------
async def _verify(world: World, place: Place) -> Request:
    """The project's first milestone not verified yet, reported by its spokesperson if it was
    not, so that each admitted caller inside verifies one (or meets a 409 once none is left)."""
    project_id, _ = world.projects[place]
    service = world.services["projects"]
    detail = (await service.client.get(f"/v1/projects/{project_id}")).json()
    open_ = sorted(
        (m for m in detail["milestones"] if m["status"] in ("pending", "reported")), key=lambda m: m["sequence"]
    )
    assert open_, f"project {project_id} has no milestone left to verify"
    milestone = open_[0]
    if milestone["status"] == "pending":
        # By the builder's operator: never a matrix caller, so no verifier here is its reporter.
        await service.client.post(
            f"/v1/projects/{project_id}/milestones/{milestone['id']}:report",
            json={"note": "Hecho"},
            headers=world.builder(),
        )
    return Request(
        path={"project_id": project_id, "milestone_id": milestone["id"]}, json={"note": "Verificado por la matriz"}
    )


def _project(world: World, place: Place) -> dict[str, str]:
    return {"project_id": world.projects[place][0]}


async def _plan(world: World, place: Place) -> Request:
    """A valid plan for the project: two milestones sharing its budget."""
    project_id = world.projects[place][0]
    detail = (await world.services["projects"].client.get(f"/v1/projects/{project_id}")).json()
    budget = detail["budget_minor"]
    today = datetime.now(UTC).date()
    milestones = [
        {"title": "Obra", "due_on": (today + timedelta(days=30)).isoformat(), "share_minor": budget // 2},
        {"title": "Entrega", "due_on": (today + timedelta(days=60)).isoformat(), "share_minor": budget - budget // 2},
    ]
    return Request(path={"project_id": project_id}, json={"milestones": milestones, "reason": "Plan de la matriz"})


async def _project_with(world: World, place: Place, body: Any) -> Request:
    return Request(path=_project(world, place), json=body)


def _with_body(body: Any) -> Build:
    async def build(world: World, place: Place) -> Request:
        return await _project_with(world, place, body)

    return build


def _last_milestone(world: World, place: Place) -> dict[str, str]:
    project_id, milestones = world.projects[place]
    return {"project_id": project_id, "milestone_id": milestones[-1]}


def _unknown(name: str, body: Any = None) -> Build:
    """The project of `place` and an id of `name` that does not exist in it: inside, the caller
    passes the territory check and meets a 404; outside, the 403 comes first."""

    async def build(world: World, place: Place) -> Request:
        return Request(path={**_project(world, place), name: str(uuid.uuid4())}, json=body)

    return build


async def _last_report(world: World, place: Place) -> Request:
    return Request(path=_last_milestone(world, place), json={"note": "Hecho"})


# A PNG's signature: what the content check recognises (`domain.evidence`).
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


async def _receipt(world: World) -> str:
    upload = await world.services["projects"].client.post("/v1/evidence:upload", content=PNG, headers=world.builder())
    assert upload.status_code == 201, upload.text
    return str(upload.json()["sha256"])


async def _expenditure(world: World, place: Place) -> Request:
    body = {
        "amount_minor": 1,
        "currency": "USD",
        "spent_on": datetime.now(UTC).date().isoformat(),
        "supplier": "Ferretería La Matriz",
        "description": "Cemento",
        "receipt_sha256": await _receipt(world),
    }
    return Request(path=_project(world, place), json=body)


async def _evidence(world: World, place: Place) -> Request:
    return Request(path={"sha256": await _receipt(world)})


# Grant and revoke decide in identity's rules (`rules.check_grant`): the granters of the role.
GRANTERS = rules.granters_of(Role.SPOKESPERSON)
ANYONE = frozenset(Role)
# Who sees others' assignments (`rules.visibility`): granters inside theirs, and nationally.
READERS = frozenset(rules.GRANTS) | rules.SEE_EVERYTHING
# Identity answers 404 for an assignment the caller may not see (`access._visible`).
NOT_FOUND = (404, "assignment_not_found")
RESIDENT_NOT_FOUND = (404, "resident_not_found")
# Parked messages decide in `comuna_platform.events.parked_api` (`require_national`).
PARKED_READERS = frozenset({Role.OPERATOR, Role.AUDITOR})
PARKED_OPERATORS = frozenset({Role.OPERATOR})
# The audit log's entries decide in `comuna_identity.api.audit` (`require_national`).
AUDIT_READERS = frozenset({Role.AUDITOR, Role.OPERATOR})


def _everywhere() -> dict[str, Factory]:
    """Operations every service has: probes and the parked-messages API."""
    found: dict[str, Factory] = {}
    for service in SERVICES:
        found |= {
            f"{service}:healthz_healthz_get": Factory(fixed()),
            f"{service}:readyz_readyz_get": Factory(fixed()),
            f"{service}:list_parked_messages_v1_parked_messages_get": Factory(
                fixed(), admits=PARKED_READERS, scoped=False
            ),
            f"{service}:get_parked_message_v1_parked_messages__parked_id__get": Factory(
                fixed(Request(path={"parked_id": "1"})), admits=PARKED_READERS, scoped=False
            ),
            f"{service}:replay_parked_message_v1_parked_messages__parked_id__replay_post": Factory(
                fixed(Request(path={"parked_id": "1"})), admits=PARKED_OPERATORS, scoped=False
            ),
        }
    return found


def _offline_table(world: World, place: Place) -> dict[str, str]:
    # TABLE is the matrix officer's table at INSIDE; OUTSIDE's table is another commune's.
    return {"consultation_id": world.consultations["voting"].id, "table_code": TABLE if place == INSIDE else "T-C9"}


async def _offline_sync(world: World, place: Place) -> Request:
    body = {
        "batch_id": str(uuid.uuid4()),
        "snapshot_digest": "0" * 64,
        "checkins": [],
        "ballots": [],
        "null_votes": 0,
        "mac": "AAAA",
    }
    return Request(path=_offline_table(world, place), json=body)


FACTORIES: dict[str, Factory] = {
    **_everywhere(),
    # identity
    "identity:create_territory_v1_territories_post": Factory(_territory),
    "identity:change_territory_v1_territories__code__change_post": Factory(_change_territory),
    # A national act: the whole register, from an operator held at the country root.
    "identity:import_territories_v1_territories_import_post": Factory(_import_territories, scoped=False),
    "identity:export_territories_v1_territories_export_get": Factory(fixed(Request(params={"format": "json"}))),
    "identity:list_territories_v1_territories_get": Factory(fixed(Request(params={"parent_code": "VE"}))),
    "identity:get_territory_v1_territories__code__get": Factory(fixed(Request(path={"code": INSIDE}))),
    "identity:register_resident_v1_residents_post": Factory(_register),
    "identity:register_residents_v1_residents_batch_post": Factory(_register_batch),
    "identity:import_census_v1_residents_import_post": Factory(_import),
    "identity:move_v1_residents_move_post": Factory(_move),
    # Counts per key id: concerns no one territory.
    "identity:rotation_v1_census_rotation_get": Factory(fixed(), scoped=False),
    "identity:grant_role_v1_role_assignments_post": Factory(_grant, admits=GRANTERS),
    # Lists what the caller may see (`rules.visibility`): nothing is refused, so no outside.
    "identity:list_role_assignments_v1_role_assignments_get": Factory(
        fixed(Request(params={"territory_code": INSIDE})), admits=ANYONE, scoped=False
    ),
    # An assignment the caller may not see is not found: its existence is not disclosed.
    "identity:get_role_assignment_v1_role_assignments__assignment_id__get": Factory(
        ids(lambda world, place: {"assignment_id": world.assignments[place]}), admits=READERS, hides=NOT_FOUND
    ),
    "identity:revoke_role_assignment_v1_role_assignments__assignment_id__revoke_post": Factory(
        _revoke, admits=GRANTERS, hides=NOT_FOUND
    ),
    "identity:me_v1_me_get": Factory(fixed()),
    "identity:get_roll_v1_rolls__consultation_id__get": Factory(_consultation("voting")),
    # Any signed-in person asks about their own place on a roll (no assignment needed).
    "identity:my_roll_v1_me_roll_get": Factory(_my_roll, scoped=False),
    # A resident outside the registrar's scope is not found, as an unknown document is
    # (`enrolment.ResidentOutOfReach`): where they live, or that they are registered, is not disclosed.
    "identity:link_resident_v1_residents_link_post": Factory(_link, hides=RESIDENT_NOT_FOUND),
    "identity:issue_enrolment_code_v1_residents_enrolment_code_post": Factory(
        _enrolment_code, hides=RESIDENT_NOT_FOUND
    ),
    "identity:redeem_enrolment_code_v1_enrolment_redeem_post": Factory(_redeem),
    "identity:list_audit_entries_v1_audit_get": Factory(fixed(), admits=AUDIT_READERS, scoped=False),
    "identity:audit_head_v1_audit_head_get": Factory(fixed()),
    # consultations
    "consultations:open_consultation_v1_consultations_post": Factory(_open),
    "consultations:list_consultations_v1_consultations_get": Factory(fixed()),
    "consultations:get_consultation_v1_consultations__consultation_id__get": Factory(_consultation("certified")),
    "consultations:list_communes_v1_consultations__consultation_id__communes_get": Factory(_consultation("certified")),
    "consultations:amend_schedule_v1_consultations__consultation_id__amend_schedule_post": Factory(_amend),
    "consultations:list_amendments_v1_consultations__consultation_id__schedule_amendments_get": Factory(
        _consultation("moving")
    ),
    "consultations:hold_commune_v1_consultations__consultation_id__communes__commune_id__hold_post": Factory(_hold),
    "consultations:list_holds_v1_consultations__consultation_id__holds_get": Factory(_consultation("moving")),
    "consultations:record_session_v1_consultations__consultation_id__communes__commune_id__assemblies_post": (
        Factory(_assembly_session)
    ),
    "consultations:list_sessions_v1_consultations__consultation_id__communes__commune_id__assemblies_get": (
        Factory(ids(_certified_commune))
    ),
    "consultations:list_proposals_v1_consultations__consultation_id__communes__commune_id__proposals_get": (
        Factory(ids(_certified_commune))
    ),
    "consultations:prioritise_v1_consultations__consultation_id__communes__commune_id__prioritisation_put": (
        Factory(_prioritise)
    ),
    "consultations:get_prioritisation_v1_consultations__consultation_id__communes__commune_id__prioritisation_get": (
        Factory(ids(_certified_commune))
    ),
    "consultations:freeze_roll_v1_consultations__consultation_id__roll_freeze_post": Factory(_consultation("assembly")),
    "consultations:get_roll_v1_consultations__consultation_id__roll_get": Factory(_consultation("voting")),
    "consultations:certify_v1_consultations__consultation_id__certify_post": Factory(_consultation("moving")),
    "consultations:record_candidate_v1_consultations__consultation_id__communes__commune_id__candidates_post": (
        Factory(_candidate)
    ),
    "consultations:list_candidates_v1_consultations__consultation_id__communes__commune_id__candidates_get": (
        Factory(ids(_certified_commune))
    ),
    # The use case decides by channel (`voting.usecases.cast_ballot`): table ballots by a table officer.
    # Outside its own table an officer is told only that it is not an officer of that table.
    "consultations:cast_ballot_v1_consultations__consultation_id__ballots_post": Factory(
        _ballot, admits=AT_TABLE, hides=FORBIDDEN_TABLE
    ),
    "consultations:check_receipt_v1_consultations__consultation_id__receipts__receipt__get": Factory(
        ids(lambda world, place: {"consultation_id": world.consultations["certified"].id, "receipt": world.receipt})
    ),
    # The public record: anyone reads it (entries once no commune votes).
    "consultations:checkpoint_v1_consultations__consultation_id__record_checkpoint_get": Factory(
        _consultation("certified")
    ),
    "consultations:tile_v1_consultations__consultation_id__record_tile__path__get": Factory(
        ids(lambda world, place: {"consultation_id": world.consultations["certified"].id, "path": "0/000.p/1"})
    ),
    "consultations:keys_v1_consultations__consultation_id__record_keys_get": Factory(_consultation("certified")),
    "consultations:bulletins_v1_consultations__consultation_id__record_bulletins_get": Factory(
        _consultation("certified")
    ),
    "consultations:bulletin_v1_consultations__consultation_id__record_bulletins__name__get": Factory(
        ids(lambda world, place: {"consultation_id": world.consultations["certified"].id, "name": "0.png"})
    ),
    # Witnesses are not people: a cosignature is kept on its own signature, from a listed witness.
    "consultations:cosignature_v1_consultations__consultation_id__record_cosignatures_post": Factory(
        _consultation("certified")
    ),
    # Offline tables: the use case decides (an officer of THAT table of this consultation,
    # `domain.tables`), as for every table.
    "consultations:snapshot_public_keys_v1_snapshot_keys_get": Factory(fixed()),
    "consultations:table_snapshot_v1_consultations__consultation_id__tables__table_code__snapshot_get": Factory(
        ids(_offline_table), admits=AT_TABLE, hides=FORBIDDEN_TABLE
    ),
    "consultations:sync_table_v1_consultations__consultation_id__tables__table_code__sync_post": Factory(
        _offline_sync, admits=AT_TABLE, hides=FORBIDDEN_TABLE
    ),
    "consultations:results_v1_consultations__consultation_id__results_get": Factory(_consultation("certified")),
    "consultations:import_centres_v1_consultations__consultation_id__voting_centres_import_post": Factory(
        _import_layout
    ),
    "consultations:add_centre_v1_consultations__consultation_id__voting_centres_post": Factory(_add_centre),
    "consultations:add_table_v1_consultations__consultation_id__tables_post": Factory(_add_table),
    "consultations:list_centres_v1_consultations__consultation_id__voting_centres_get": Factory(
        _consultation("voting")
    ),
    "consultations:list_tables_v1_consultations__consultation_id__tables_get": Factory(_consultation("voting")),
    "consultations:get_table_v1_consultations__consultation_id__tables__table_code__get": Factory(_at_table()),
    "consultations:check_in_v1_consultations__consultation_id__tables__table_code__check_in_post": Factory(
        _at_table(_document), admits=AT_TABLE, hides=FORBIDDEN_TABLE
    ),
    "consultations:record_check_in_v1_consultations__consultation_id__tables__table_code__check_ins_post": Factory(
        _at_table(_document), admits=AT_TABLE, hides=FORBIDDEN_TABLE
    ),
    "consultations:submit_tally_sheet_v1_consultations__consultation_id__tables__table_code__tally_sheet_post": (
        Factory(_at_table(_tally_sheet), admits=AT_TABLE, hides=FORBIDDEN_TABLE)
    ),
    "consultations:confirm_tally_sheet_v1_consultations__consultation_id__tables__table_code__"
    "tally_sheet_confirm_post": (
        Factory(_at_table(lambda world: {"sheet_id": str(uuid.uuid4())}), admits=AT_TABLE, hides=FORBIDDEN_TABLE)
    ),
    "consultations:get_tally_sheet_v1_consultations__consultation_id__tables__table_code__tally_sheet_get": Factory(
        _at_table()
    ),
    # Results and certification acts are national (`require_national`); before the close they are 409.
    "consultations:certify_commune_v1_consultations__consultation_id__communes__commune_id__certify_post": Factory(
        ids(_certified_commune), scoped=False
    ),
    "consultations:recount_v1_consultations__consultation_id__communes__commune_id__recount_post": Factory(
        _with_reason, scoped=False
    ),
    "consultations:conflict_decision_v1_consultations__consultation_id__communes__commune_id__conflict_decision_post": (
        Factory(_with_reason, scoped=False)
    ),
    "consultations:certifications_v1_consultations__consultation_id__communes__commune_id__certifications_get": (
        Factory(ids(_certified_commune))
    ),
    "consultations:tie_break_v1_consultations__consultation_id__tie_break_get": Factory(_consultation("certified")),
    "consultations:declare_tie_break_v1_consultations__consultation_id__tie_break_put": Factory(
        _tie_break, scoped=False
    ),
    "consultations:commune_results_v1_consultations__consultation_id__communes__commune_id__results_get": Factory(
        ids(_certified_commune)
    ),
    # funding
    "funding:list_allocations_v1_allocations_get": Factory(fixed()),
    "funding:get_allocation_v1_allocations__allocation_id__get": Factory(
        ids(lambda world, place: {"allocation_id": world.allocations[INSIDE][0]})
    ),
    "funding:list_accounts_v1_accounts_get": Factory(fixed()),
    "funding:get_account_v1_accounts__account_id__get": Factory(
        ids(lambda world, place: {"account_id": world.allocations[INSIDE][1]})
    ),
    "funding:list_transfers_v1_transfers_get": Factory(fixed()),
    "funding:ledger_totals_v1_ledger_totals_get": Factory(fixed()),
    # The ledger's writes: national operators (the ledger is the country's, not a territory's).
    "funding:open_account_v1_accounts_post": Factory(_open_account, scoped=False),
    "funding:close_account_v1_accounts__account_id__close_post": Factory(_close_account, scoped=False),
    "funding:create_transfer_v1_transfers_post": Factory(_transfer, scoped=False),
    "funding:create_transfers_v1_transfers_batch_post": Factory(_transfer_batch, scoped=False),
    # Co-funding: funders and rules by national operators; pledges by the funder's officials
    # (the use case checks the funder's territory, `cofunding_routes.PLEDGERS`); reads public.
    "funding:list_funders_v1_funders_get": Factory(fixed()),
    "funding:get_funder_v1_funders__name__get": Factory(fixed(Request(path={"name": "national"}))),
    "funding:register_funder_v1_funders_post": Factory(_funder, scoped=False),
    "funding:record_pledge_v1_funders__name__pledges_post": Factory(_pledge, admits=FUNDER_OFFICIALS),
    "funding:record_deposit_v1_funders__name__deposits_post": Factory(_deposit, admits=FUNDER_OFFICIALS),
    "funding:declare_rules_v1_consultations__consultation_id__funding_rules_put": Factory(_rules, scoped=False),
    "funding:get_rules_v1_consultations__consultation_id__funding_rules_get": Factory(
        fixed(Request(path={"consultation_id": str(uuid.uuid4())}))
    ),
    "funding:funding_plan_v1_consultations__consultation_id__funding_plan_get": Factory(
        fixed(Request(path={"consultation_id": str(uuid.uuid4())}))
    ),
    "funding:preview_plan_v1_consultations__consultation_id__funding_plan_preview_post": Factory(_rules, scoped=False),
    # The ledger's journal: public, as the consultations' record.
    "funding:checkpoint_v1_ledger_record_checkpoint_get": Factory(fixed()),
    "funding:tile_v1_ledger_record_tile__path__get": Factory(fixed(Request(path={"path": "0/000.p/1"}))),
    "funding:keys_v1_ledger_record_keys_get": Factory(fixed()),
    "funding:cosignature_v1_ledger_record_cosignatures_post": Factory(fixed()),
    "funding:balances_v1_ledger_balances_get": Factory(fixed()),
    # Reconciliation: national operators import; the reports are public.
    "funding:import_statement_v1_accounts__account_id__statements_post": Factory(_statement, scoped=False),
    "funding:get_statement_v1_accounts__account_id__statements__statement_id__get": Factory(_statement_report),
    "funding:list_statement_items_v1_accounts__account_id__statements__statement_id__items_get": Factory(
        _statement_items
    ),
    # Open data: public.
    "funding:export_transactions_v1_exports_transactions_get": Factory(fixed()),
    "funding:export_totals_v1_exports_totals_get": Factory(fixed()),
    # projects
    "projects:list_projects_v1_projects_get": Factory(fixed()),
    "projects:get_project_by_allocation_v1_projects_by_allocation__allocation_id__get": Factory(
        ids(lambda world, place: {"allocation_id": world.allocations[INSIDE][0]})
    ),
    "projects:get_project_v1_projects__project_id__get": Factory(
        ids(lambda world, place: {"project_id": world.projects[INSIDE][0]})
    ),
    "projects:verify_milestone_v1_projects__project_id__milestones__milestone_id__verify_post": Factory(_verify),
    # The last milestone: refused as out of order (409) until the others are reported.
    "projects:report_milestone_v1_projects__project_id__milestones__milestone_id__report_post": Factory(_last_report),
    "projects:return_milestone_v1_projects__project_id__milestones__milestone_id__return_post": Factory(
        _unknown("milestone_id", {"note": "Falta terminar"})
    ),
    "projects:list_milestone_returns_v1_projects__project_id__milestone_returns_get": Factory(ids(_project)),
    "projects:edit_plan_v1_projects__project_id__plan_put": Factory(_plan),
    "projects:start_project_v1_projects__project_id__start_post": Factory(
        _with_body({"spokespeople": ["Vocera de la matriz"]})
    ),
    "projects:cancel_project_v1_projects__project_id__cancel_post": Factory(
        # Inside, the first admitted caller cancels the project for real; the project cases after
        # it meet 409s, which pass the territory check all the same.
        _with_body({"reason": "Cancelación de la matriz"})
    ),
    "projects:complete_project_v1_projects__project_id__complete_post": Factory(ids(_project)),
    "projects:propose_change_v1_projects__project_id__change_requests_post": Factory(_plan),
    "projects:approve_change_v1_projects__project_id__change_requests__request_id__approve_post": Factory(
        _unknown("request_id", {"note": "Aprobado"})
    ),
    "projects:reject_change_v1_projects__project_id__change_requests__request_id__reject_post": Factory(
        _unknown("request_id", {"note": "Rechazado"})
    ),
    "projects:withdraw_change_v1_projects__project_id__change_requests__request_id__withdraw_post": Factory(
        _unknown("request_id")
    ),
    "projects:list_plan_revisions_v1_projects__project_id__plan_revisions_get": Factory(ids(_project)),
    # Open data: public.
    "projects:stats_v1_stats_get": Factory(fixed()),
    "projects:export_projects_v1_exports_projects_get": Factory(fixed()),
    "projects:list_change_requests_v1_projects__project_id__change_requests_get": Factory(ids(_project)),
    "projects:list_progress_reports_v1_projects__project_id__progress_reports_get": Factory(ids(_project)),
    "projects:list_expenditures_v1_projects__project_id__expenditures_get": Factory(ids(_project)),
    "projects:list_oversight_reports_v1_projects__project_id__oversight_reports_get": Factory(ids(_project)),
    "projects:get_evidence_v1_evidence__sha256__get": Factory(_evidence),
    # Uploads concern no territory: the file is cited later, where the citing report is checked.
    "projects:upload_evidence_v1_evidence_upload_post": Factory(
        fixed(Request(content=PNG, content_type="application/octet-stream")), scoped=False
    ),
    "projects:report_progress_v1_projects__project_id__progress_reports_post": Factory(
        _with_body({"percent_complete": 10, "text": "Avance de la matriz", "evidence": []})
    ),
    "projects:record_expenditure_v1_projects__project_id__expenditures_post": Factory(_expenditure),
    "projects:file_oversight_report_v1_projects__project_id__oversight_reports_post": Factory(
        _with_body({"kind": "observation", "text": "Observación de la matriz"})
    ),
    "projects:list_oversight_reports_full_v1_projects__project_id__oversight_reports_full_get": Factory(ids(_project)),
    "projects:review_oversight_report_v1_projects__project_id__oversight_reports__report_id__review_post": Factory(
        _unknown("report_id")
    ),
    "projects:answer_oversight_report_v1_projects__project_id__oversight_reports__report_id__answer_post": Factory(
        _unknown("report_id", {"answer": "Respuesta"})
    ),
    "projects:close_oversight_report_v1_projects__project_id__oversight_reports__report_id__close_post": Factory(
        _unknown("report_id")
    ),
}


# -- enumeration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    path: str
    operation_id: str
    name: str
    authenticated: bool  # reads a token
    resolved: bool  # asks identity where the caller may act
    declared: frozenset[Role] | None  # the roles its `require_assignment` admits

    @property
    def key(self) -> str:
        return f"{self.service}:{self.operation_id}"


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _operations() -> list[Operation]:
    found = []
    for service in SERVICES:
        spec = importlib.import_module(f"comuna_{service}.service").SPEC
        app = create_app(
            service=spec.name, title=spec.title, description=spec.description, routers=service_routers(spec)
        )
        # Routes as the app serves them (included routers flattened, their dependencies added).
        routes = [r for r in iter_route_contexts(app.routes) if isinstance(r.original_route, APIRoute)]
        for path, item in app.openapi()["paths"].items():
            for method, operation in item.items():
                route = next(r for r in routes if r.path_format == path and method.upper() in (r.methods or ()))
                calls = list(_calls(route.dependant))
                declared = [roles for roles in map(admitted_roles, calls) if roles is not None]
                found.append(
                    Operation(
                        service=service,
                        method=method.upper(),
                        path=path,
                        operation_id=operation["operationId"],
                        name=str(route.name),
                        authenticated=bearer_principal in calls,
                        resolved=current_caller in calls,
                        declared=frozenset().union(*declared) if declared else None,
                    )
                )
    return found


OPERATIONS = _operations()
BAD_TOKENS = ("no-token", "expired", "other-realm")


@dataclass(frozen=True)
class Case:
    operation: Operation
    caller: str  # a role's value, "anonymous", "any-person" or one of BAD_TOKENS
    place: Place = INSIDE
    problem: str = ""  # why the case cannot run (a missing factory, roles declared twice)

    @property
    def id(self) -> str:
        where = "" if self.caller in (*BAD_TOKENS, "anonymous", "any-person") else f".{_where(self.place)}"
        return f"{self.operation.service}.{self.operation.name}.{self.caller}{where}"


def _where(place: Place) -> str:
    return {INSIDE: "inside", OUTSIDE: "outside"}.get(place, place)


def _admitted(operation: Operation, factory: Factory) -> tuple[frozenset[Role] | None, str]:
    if operation.declared is not None and factory.admits is not None:
        return None, f"{operation.key}: the route declares its roles; drop `admits` from its factory"
    if operation.declared is None and factory.admits is None:
        return None, f"{operation.key}: the route declares no roles; say in its factory which code decides them"
    return operation.declared or factory.admits, ""


def _cases() -> list[Case]:
    cases: list[Case] = []
    for operation in OPERATIONS:
        factory = FACTORIES.get(operation.key)
        if factory is None:
            cases.append(Case(operation, "factory", problem=f"no request factory for operation {operation.key}"))
            continue
        if not operation.authenticated:
            cases.append(Case(operation, "anonymous"))
            continue
        cases += [Case(operation, bad) for bad in BAD_TOKENS]
        if not operation.resolved:
            # The token alone decides (the caller's own data): any authenticated person.
            cases.append(Case(operation, "any-person"))
            continue
        roles, problem = _admitted(operation, factory)
        if roles is None:
            cases.append(Case(operation, "roles", problem=problem))
            continue
        for role in Role:
            cases.append(Case(operation, str(role)))
            if role in roles and factory.scoped and has_outside(role):
                cases.append(Case(operation, str(role), OUTSIDE))
            if role is Role.TABLE_OFFICER and role in roles and factory.scoped:
                # A table officer's territory is one table of one consultation.
                cases.append(Case(operation, str(role), OTHER_CONSULTATION))
    return cases


CASES = _cases()


def _methods() -> list[tuple[str, ServiceDescriptor, MethodDescriptor]]:
    found = []
    for service in SERVICES:
        package = importlib.import_module(f"comuna.{service}.v1")
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.endswith("_pb2"):
                continue
            descriptor = importlib.import_module(f"{package.__name__}.{module.name}").DESCRIPTOR
            for grpc_service in descriptor.services_by_name.values():
                found += [(service, grpc_service, method) for method in grpc_service.methods]
    return found


METHODS = _methods()
GRPC_CALLERS = (*SERVICES, "person", *BAD_TOKENS)


# -- the world --------------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[World]:
    async with running_world(embedded_postgres, embedded_nats, issuer) as built:
        yield built


def _bad_headers(world: World, caller: str) -> dict[str, str]:
    subject = world.subject(Role.SPOKESPERSON)
    if caller == "expired":
        return world.issuer.headers(subject=subject, ttl=-1)
    if caller == "other-realm":
        return world.issuer.headers(subject=subject, iss="elsewhere")
    return {}


def _code(response: Any) -> str:
    try:
        return str(response.json().get("code", ""))
    except ValueError:
        return ""


async def test_every_operation_and_method_is_enumerated() -> None:
    # Guards the enumeration itself: all four services, their protected and public operations,
    # and a gRPC service per service.
    assert {op.service for op in OPERATIONS} == set(SERVICES)
    assert {op.key for op in OPERATIONS if op.declared} >= {
        "consultations:record_candidate_v1_consultations__consultation_id__communes__commune_id__candidates_post",
        "projects:verify_milestone_v1_projects__project_id__milestones__milestone_id__verify_post",
    }
    # A factory left behind by a removed or renamed operation is stale: say so.
    assert set(FACTORIES) <= {op.key for op in OPERATIONS}, set(FACTORIES) - {op.key for op in OPERATIONS}
    assert {service for service, _, _ in METHODS} == set(SERVICES)
    assert all(declared_callers(f"/{s.full_name}/{m.name}") for _, s, m in METHODS)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_rest_operation(world: World, case: Case) -> None:
    operation = case.operation
    assert not case.problem, case.problem
    factory = FACTORIES[operation.key]
    refusal_expected = case.place != INSIDE
    request = await factory.build(world, OUTSIDE if case.place == OUTSIDE else INSIDE)
    path = operation.path.format(**request.path)
    service = world.services[operation.service]
    if case.caller in ("anonymous", *BAD_TOKENS):
        headers = _bad_headers(world, case.caller)
    elif case.caller == "any-person":
        headers = world.issuer.headers(subject=str(uuid.uuid4()))
    elif case.place == OTHER_CONSULTATION:
        headers = world.other_table_officer()
    else:
        headers = world.headers(Role(case.caller))
    before = None
    if refusal_expected:
        await world.settle()
        before = await world.fingerprint(operation.service)

    if request.content_type is not None:
        headers = {**headers, "content-type": request.content_type}
    response = await service.client.request(
        operation.method, path, headers=headers, json=request.json, params=request.params, content=request.content
    )

    said = f"{operation.method} {path} as {case.caller}: {response.status_code} {response.text[:300]}"
    if case.caller in BAD_TOKENS:
        assert response.status_code == 401, said
        return
    if case.caller in ("anonymous", "any-person"):
        assert response.status_code not in (401, 403), said
        return
    roles, _ = _admitted(operation, factory)
    assert roles is not None
    refused = (response.status_code, _code(response))
    if Role(case.caller) not in roles:
        assert refused in ((403, "forbidden_role"), factory.hides), said
    elif refusal_expected:
        assert refused in ((403, "forbidden_territory"), factory.hides), said
        assert await world.fingerprint(operation.service) == before, f"{said}: it wrote something"
    else:
        assert response.status_code not in (401, 403) and response.status_code < 500, said


def _grpc_headers(world: World, caller: str) -> list[tuple[str, str]]:
    if caller in SERVICES:
        token = world.issuer.token(roles=["service"], client_id=f"svc-{caller}")
        return [("authorization", f"Bearer {token}")]
    headers = world.headers(Role.OPERATOR) if caller == "person" else _bad_headers(world, caller)
    return [(k.lower(), v) for k, v in headers.items()]


@pytest.mark.parametrize(
    ("service", "grpc_service", "method", "caller"),
    [(s, gs, m, c) for s, gs, m in METHODS for c in GRPC_CALLERS],
    ids=[f"{gs.full_name}.{m.name}.{c}" for _, gs, m in METHODS for c in GRPC_CALLERS],
)
async def test_grpc_method(
    world: World, service: str, grpc_service: ServiceDescriptor, method: MethodDescriptor, caller: str
) -> None:
    assert not method.client_streaming, f"{method.full_name}: client streaming is not driven here"
    full = f"/{grpc_service.full_name}/{method.name}"
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    metadata = _grpc_headers(world, caller)
    async with grpc.aio.insecure_channel(world.grpc_targets[service]) as channel:
        try:
            if method.server_streaming:
                # The whole stream is read: a refusal may come with the first message or instead of it.
                stream: grpc.aio.UnaryStreamMultiCallable[Message, Message] = channel.unary_stream(
                    full, request_serializer=Message.SerializeToString, response_deserializer=response_type.FromString
                )
                async for _ in stream(request_type(), metadata=metadata, timeout=20):
                    pass
            else:
                call: grpc.aio.UnaryUnaryMultiCallable[Message, Message] = channel.unary_unary(
                    full, request_serializer=Message.SerializeToString, response_deserializer=response_type.FromString
                )
                await call(request_type(), metadata=metadata, timeout=20)
            status = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            status = error.code()
    said = f"{full} as {caller}: {status}"
    if caller in SERVICES:
        if caller in declared_callers(full):
            assert status not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), said
        else:
            assert status == grpc.StatusCode.PERMISSION_DENIED, said
    elif caller == "person":
        assert status == grpc.StatusCode.PERMISSION_DENIED, said
    else:
        assert status == grpc.StatusCode.UNAUTHENTICATED, said
