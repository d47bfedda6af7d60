"""Enrolment over REST against real PostgreSQL and NATS: link in person, one-time codes (shown
once, replaced, burnt after 5 failures, single use), and no document number kept or echoed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
import pytest_asyncio
from nats.aio.subscription import Subscription
from sqlalchemy import select, text

from comuna.identity.v1 import events_pb2
from comuna_devstack.nats import EmbeddedNats
from comuna_identity.domain.enrolment import MAX_ATTEMPTS
from comuna_identity.storage.models import EnrolmentCode
from comuna_platform.auth.roles import Role
from tests.identity.authority import grant, person
from tests.identity.test_registry_api import registrar, seed
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

C1_REGISTRAR = "subject-enrol-c1-registrar"
C2_REGISTRAR = "subject-enrol-c2-registrar"
SPOKESPERSON = "subject-enrol-spokesperson"
COUNCIL = "VE.01.01.C1.CC1"
# Residents of council C1.CC1, one per test so the tests stay independent.
DOCS = {name: f"V{81_000_000 + i}" for i, name in enumerate(["link", "code", "reissue", "burn", "guess", "other"])}


@pytest_asyncio.fixture(scope="module", autouse=True)
async def census(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer)
    await grant(identity, C1_REGISTRAR, Role.REGISTRAR, "VE.01.01.C1")
    await grant(identity, C2_REGISTRAR, Role.REGISTRAR, "VE.01.01.C2")
    await grant(identity, SPOKESPERSON, Role.SPOKESPERSON, "VE.01.01.C1")
    residents = [{"national_id": doc, "birth_date": "1980-01-01", "council_code": COUNCIL} for doc in DOCS.values()]
    response = await identity.client.post(
        "/v1/residents:batch", json={"residents": residents}, headers=registrar(issuer)
    )
    assert response.status_code == 201, response.text


def digits(doc: str) -> str:
    return doc[1:]


async def issue(identity: RunningService, issuer: TestIssuer, doc: str) -> httpx.Response:
    return await identity.client.post(
        "/v1/residents:enrolment-code", json={"national_id": doc}, headers=person(issuer, C1_REGISTRAR)
    )


async def redeem(identity: RunningService, issuer: TestIssuer, subject: str, code: str, doc: str) -> httpx.Response:
    return await identity.client.post(
        "/v1/enrolment:redeem", json={"code": code, "national_id": doc}, headers=person(issuer, subject)
    )


async def me(identity: RunningService, issuer: TestIssuer, subject: str) -> dict[str, Any]:
    response = await identity.client.get("/v1/me", headers=person(issuer, subject))
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest_asyncio.fixture
async def grants(embedded_nats: EmbeddedNats) -> AsyncIterator[Subscription]:
    nc = await nats.connect(embedded_nats.url)
    try:
        yield await nc.subscribe("identity.role_assignment.granted")
    finally:
        await nc.drain()


async def granted_to(sub: Subscription, subject: str) -> events_pb2.RoleAssignmentGranted:
    async with asyncio.timeout(15):
        while True:
            msg = await sub.next_msg(timeout=15)
            event = events_pb2.RoleAssignmentGranted.FromString(msg.data)
            if event.subject == subject:
                return event


async def test_a_registrar_links_in_person(identity: RunningService, issuer: TestIssuer, grants: Subscription) -> None:
    subject = str(uuid.uuid4())
    link = {"national_id": DOCS["link"], "subject": subject}
    response = await identity.client.post("/v1/residents:link", json=link, headers=person(issuer, C1_REGISTRAR))
    assert response.status_code == 201, response.text
    resident_id = response.json()["resident_id"]
    assert response.json() == {"resident_id": resident_id, "subject": subject}

    mine = await me(identity, issuer, subject)
    assert mine["resident_id"] == resident_id
    assert [(a["role"], a["territory_code"], a["granted_by"]) for a in mine["assignments"]] == [
        ("resident", COUNCIL, C1_REGISTRAR)
    ]
    event = await granted_to(grants, subject)
    assert (event.assignment.role, event.assignment.territory.code) == ("resident", COUNCIL)
    assert digits(DOCS["link"]) not in str(event)

    cases = [
        (C1_REGISTRAR, {**link, "subject": "someone-else"}, 409, "resident_already_linked"),
        (C1_REGISTRAR, {"national_id": DOCS["other"], "subject": subject}, 409, "subject_already_linked"),
        # Lives outside this registrar's scope: as if not in the census (see the test below).
        (C2_REGISTRAR, {"national_id": DOCS["other"], "subject": "x"}, 404, "resident_not_found"),
        (SPOKESPERSON, {"national_id": DOCS["other"], "subject": "x"}, 403, "forbidden_role"),
        (C1_REGISTRAR, {"national_id": DOCS["other"], "subject": C1_REGISTRAR}, 403, "own_assignment"),
        (C1_REGISTRAR, {"national_id": "V99999999", "subject": "x"}, 404, "resident_not_found"),
        (C1_REGISTRAR, {"national_id": "not a number", "subject": "x"}, 422, "document_invalid"),
    ]
    for who, payload, status, code in cases:
        refused = await identity.client.post("/v1/residents:link", json=payload, headers=person(issuer, who))
        assert (refused.status_code, refused.json()["code"]) == (status, code), payload
        assert digits(payload["national_id"]) not in refused.text
    assert (await me(identity, issuer, "x"))["resident_id"] is None


async def test_a_code_is_shown_once_redeemed_once_and_never_stored(
    identity: RunningService, issuer: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    doc = DOCS["code"]
    issued = await issue(identity, issuer, doc)
    assert issued.status_code == 201, issued.text
    code = issued.json()["code"]
    assert set(issued.json()) == {"resident_id", "code", "expires_at"}
    subject = str(uuid.uuid4())

    wrong_document = await redeem(identity, issuer, subject, code, DOCS["other"])
    unknown_code = await redeem(identity, issuer, subject, "AAAA-BBBB-CCCC", doc)
    # Neither answer says which half was wrong.
    assert wrong_document.json()["detail"] == unknown_code.json()["detail"]
    assert {wrong_document.status_code, unknown_code.status_code} == {403}
    assert {wrong_document.json()["code"], unknown_code.json()["code"]} == {"enrolment_refused"}

    # Typed by hand: case, spaces and dashes do not matter.
    redeemed = await redeem(identity, issuer, subject, code.lower().replace("-", " "), doc.lower())
    assert redeemed.status_code == 200, redeemed.text
    assert (await me(identity, issuer, subject))["resident_id"] == issued.json()["resident_id"]

    reused = await redeem(identity, issuer, str(uuid.uuid4()), code, doc)
    assert (reused.status_code, reused.json()["code"]) == (403, "enrolment_refused")
    linked_again = await redeem(identity, issuer, subject, code, doc)
    assert (linked_again.status_code, linked_again.json()["code"]) == (409, "subject_already_linked")
    after_link = await issue(identity, issuer, doc)
    assert (after_link.status_code, after_link.json()["code"]) == (409, "resident_already_linked")

    async with identity.runtime.db.transaction() as session:
        tables = ("enrolment_codes", "resident_accounts", "role_assignments", "residents")
        dump = " ".join(
            [
                (await session.execute(text(f"SELECT coalesce(json_agg(t)::text, '') FROM {table} t"))).scalar_one()
                for table in tables
            ]
        )
        payloads = (await session.execute(text("SELECT payload FROM outbox_events"))).scalars().all()
    raw_code = code.replace("-", "")
    assert raw_code not in dump and code not in dump
    assert digits(doc) not in dump
    assert all(digits(doc).encode() not in payload for payload in payloads)
    assert digits(doc) not in caplog.text and raw_code not in caplog.text
    for response in (issued, wrong_document, unknown_code, redeemed, reused, linked_again, after_link):
        assert digits(doc) not in response.text


async def test_a_new_code_replaces_the_live_one(identity: RunningService, issuer: TestIssuer) -> None:
    doc = DOCS["reissue"]
    first = (await issue(identity, issuer, doc)).json()["code"]
    second = (await issue(identity, issuer, doc)).json()["code"]
    assert first != second
    subject = str(uuid.uuid4())
    assert (await redeem(identity, issuer, subject, first, doc)).status_code == 403
    assert (await redeem(identity, issuer, subject, second, doc)).status_code == 200


@pytest.mark.parametrize("wrong", ["document", "code"])
async def test_failed_attempts_burn_the_code(identity: RunningService, issuer: TestIssuer, wrong: str) -> None:
    doc = DOCS["burn" if wrong == "document" else "guess"]
    issued = (await issue(identity, issuer, doc)).json()
    subject = str(uuid.uuid4())
    for attempt in range(MAX_ATTEMPTS):
        # A wrong document with the right code, or guessed codes with the right document.
        code, document = (issued["code"], DOCS["other"]) if wrong == "document" else (f"GUESS-{attempt}", doc)
        response = await redeem(identity, issuer, subject, code, document)
        assert (response.status_code, response.json()["code"]) == (403, "enrolment_refused")
    burnt = await redeem(identity, issuer, subject, issued["code"], doc)
    assert (burnt.status_code, burnt.json()["code"]) == (403, "enrolment_refused")
    assert (await me(identity, issuer, subject))["resident_id"] is None
    async with identity.runtime.db.transaction() as session:
        row = (
            await session.execute(
                select(EnrolmentCode).where(EnrolmentCode.resident_id == uuid.UUID(issued["resident_id"]))
            )
        ).scalar_one()
    assert row.attempts == MAX_ATTEMPTS and row.burnt_at is not None and row.redeemed_at is None


def problem(response: httpx.Response) -> dict[str, Any]:
    """The answer without what differs between any two requests."""
    return {key: value for key, value in response.json().items() if key not in {"instance", "trace_id"}}


async def written(identity: RunningService) -> tuple[int, ...]:
    async with identity.runtime.db.transaction() as session:
        tables = ("enrolment_codes", "resident_accounts", "role_assignments", "audit_log")
        return tuple(
            [int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()) for table in tables]
        )


@pytest.mark.parametrize("path", ["/v1/residents:link", "/v1/residents:enrolment-code"])
async def test_a_resident_outside_the_registrars_scope_is_not_found(
    identity: RunningService, issuer: TestIssuer, path: str
) -> None:
    """DOCS["other"] lives in C1's council. A registrar of C2 asking for them learns neither where
    they live nor that they are registered: the answer is the one for a document not in the census."""
    before = await written(identity)
    subject = str(uuid.uuid4())

    def body(doc: str) -> dict[str, str]:
        return {"national_id": doc, "subject": subject} if path.endswith(":link") else {"national_id": doc}

    hidden = await identity.client.post(path, json=body(DOCS["other"]), headers=person(issuer, C2_REGISTRAR))
    unknown = await identity.client.post(path, json=body("V81999999"), headers=person(issuer, C2_REGISTRAR))
    assert (hidden.status_code, unknown.status_code) == (404, 404)
    assert hidden.headers["content-type"] == unknown.headers["content-type"] == "application/problem+json"
    assert problem(hidden) == problem(unknown)
    assert problem(hidden)["code"] == "resident_not_found"
    for revealing in (COUNCIL, "VE.01.01.C1", "Consejo Uno", "Comuna Uno", digits(DOCS["other"])):
        assert revealing not in hidden.text
    # Nothing written: no code, no account, no assignment, no audit entry.
    assert await written(identity) == before
    assert (await me(identity, issuer, subject))["resident_id"] is None
    # The registrar covering C1 still finds them (here: the refusal that needs them found).
    own = {"national_id": DOCS["other"], "subject": C1_REGISTRAR}
    mine = await identity.client.post("/v1/residents:link", json=own, headers=person(issuer, C1_REGISTRAR))
    assert (mine.status_code, mine.json()["code"]) == (403, "own_assignment")


async def test_enrolment_needs_authority(identity: RunningService, issuer: TestIssuer) -> None:
    anonymous = await identity.client.post("/v1/enrolment:redeem", json={"code": "X", "national_id": "V1"})
    assert anonymous.status_code == 401
    service = await identity.client.post(
        "/v1/enrolment:redeem",
        json={"code": "X", "national_id": "V1"},
        headers=issuer.headers(subject="service-account-svc-funding", roles=["service"], client_id="svc-funding"),
    )
    assert (service.status_code, service.json()["code"]) == (403, "forbidden_role")
    outside = await identity.client.post(
        "/v1/residents:enrolment-code", json={"national_id": DOCS["other"]}, headers=person(issuer, C2_REGISTRAR)
    )
    assert (outside.status_code, outside.json()["code"]) == (404, "resident_not_found")
    nobody = await identity.client.post(
        "/v1/residents:enrolment-code", json={"national_id": DOCS["other"]}, headers=person(issuer, "subject-nobody")
    )
    assert (nobody.status_code, nobody.json()["code"]) == (403, "forbidden_role")
    extra = await identity.client.post(
        "/v1/residents:enrolment-code",
        json={"national_id": DOCS["other"], "subject": "x"},
        headers=person(issuer, C1_REGISTRAR),
    )
    assert (extra.status_code, extra.json()["code"]) == (422, "validation_error")
