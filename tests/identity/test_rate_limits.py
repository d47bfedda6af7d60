"""Rate limits on identity's lookups of a person by document (REST), per caller, with the
service's real wiring and a fake clock put in its place (no sleeps): the (N+1)th call is 429
with Retry-After, other callers are unaffected, the bucket refills;
repeated failures are logged with the caller and a count, never the document."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from httpx import Response

from comuna_identity.storage.models import Resident, ResidentResidence
from comuna_platform.auth.roles import Role
from comuna_platform.rate_limit import DOCUMENT_LOOKUPS, Rate, RateLimiter
from tests.identity.authority import grant, person
from tests.identity.test_registry_api import count, registrar, seed
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

BURST = 3
C1_REGISTRAR = "subject-limits-c1-registrar"
C2_REGISTRAR = "subject-limits-c2-registrar"
COUNCIL = "VE.01.01.C1.CC1"
DOC = "V-66.100.200"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(identity: RunningService) -> Clock:
    """A fresh limiter on a fake clock, in the service's place for REST and gRPC alike."""
    fake = Clock()
    limiter = RateLimiter({DOCUMENT_LOOKUPS: Rate(30, BURST)}, clock=fake)
    identity.runtime.rate_limiter = limiter
    identity.app.state.rate_limiter = limiter
    return fake


@pytest_asyncio.fixture(scope="module", autouse=True)
async def census(identity: RunningService, issuer: TestIssuer) -> None:
    await seed(identity, issuer)
    await grant(identity, C1_REGISTRAR, Role.REGISTRAR, "VE.01.01.C1")
    await grant(identity, C2_REGISTRAR, Role.REGISTRAR, "VE.01.01.C2")
    body = {"national_id": DOC, "birth_date": "1980-01-01", "council_code": COUNCIL}
    response = await identity.client.post("/v1/residents", json=body, headers=registrar(issuer))
    assert response.status_code == 201, response.text


async def redeem(identity: RunningService, issuer: TestIssuer, subject: str, doc: str = DOC) -> int:
    response = await identity.client.post(
        "/v1/enrolment:redeem", json={"code": "2222-3333-4444", "national_id": doc}, headers=person(issuer, subject)
    )
    return response.status_code


async def test_the_call_after_the_burst_is_429_with_retry_after(
    identity: RunningService, issuer: TestIssuer, clock: Clock
) -> None:
    subject = str(uuid.uuid4())
    assert [await redeem(identity, issuer, subject) for _ in range(BURST)] == [403] * BURST
    refused = await identity.client.post(
        "/v1/enrolment:redeem", json={"code": "2222-3333-4444", "national_id": DOC}, headers=person(issuer, subject)
    )
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"] == "2"  # 30 per minute: a token every 2 s
    body = refused.json()
    assert (body["code"], body["status"], body["retry_after"]) == ("rate_limited", 429, 2)
    assert "66100200" not in refused.text

    # Someone else is not held up by it.
    assert await redeem(identity, issuer, str(uuid.uuid4())) == 403
    # The bucket refills: one token after 2 s, then empty again.
    clock.now += 2.0
    assert await redeem(identity, issuer, subject) == 403
    assert await redeem(identity, issuer, subject) == 429


async def test_linking_is_limited_per_registrar(identity: RunningService, issuer: TestIssuer, clock: Clock) -> None:
    statuses = []
    for _ in range(BURST + 1):
        response = await identity.client.post(
            "/v1/residents:link",
            json={"national_id": "V-66.999.999", "subject": str(uuid.uuid4())},
            headers=person(issuer, C1_REGISTRAR),
        )
        statuses.append(response.status_code)
    assert statuses == [404] * BURST + [429]
    issue = await identity.client.post(
        "/v1/residents:enrolment-code", json={"national_id": DOC}, headers=person(issuer, C1_REGISTRAR)
    )
    assert issue.status_code == 429  # the same caller, the same limit: document lookups


async def test_repeated_failures_are_logged_with_caller_and_count_never_the_document(
    identity: RunningService, issuer: TestIssuer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    subject = str(uuid.uuid4())
    for _ in range(BURST):
        assert await redeem(identity, issuer, subject) == 403
    repeated = [r for r in caplog.records if r.name == "comuna_platform.rate_limit" and r.levelno == logging.WARNING]
    assert [r.__dict__["failures"] for r in repeated] == [3]
    assert repeated[0].__dict__["caller"] == f"subject:{subject}"
    assert repeated[0].__dict__["reason"] == "enrolment_refused"
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert "66100200" not in text and "66.100.200" not in text


async def test_can_i_vote_is_limited_per_person(identity: RunningService, issuer: TestIssuer, clock: Clock) -> None:
    headers = issuer.headers(subject="roll-curious", roles=[])
    params = {"consultation_id": str(uuid.uuid4())}
    for _ in range(BURST):
        # Not a linked resident: 404, but each lookup takes a token all the same.
        assert (await identity.client.get("/v1/me/roll", params=params, headers=headers)).status_code == 404
    refused = await identity.client.get("/v1/me/roll", params=params, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (429, "rate_limited")
    assert refused.headers["Retry-After"] == "2"  # 30 per minute: a token every 2 s
    clock.now += 2.0
    assert (await identity.client.get("/v1/me/roll", params=params, headers=headers)).status_code == 404


async def register(identity: RunningService, issuer: TestIssuer, subject: str, council: str = COUNCIL) -> Response:
    body = {"national_id": DOC, "birth_date": "1980-01-01", "council_code": council}
    return await identity.client.post("/v1/residents", json=body, headers=person(issuer, subject))


async def test_registering_is_a_lookup_limited_per_registrar(
    identity: RunningService, issuer: TestIssuer, clock: Clock
) -> None:
    # DOC lives in C1, which this registrar covers: it may learn that, a bounded number of times.
    answers = [await register(identity, issuer, C1_REGISTRAR) for _ in range(BURST)]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [(409, "resident_exists")] * BURST
    refused = await register(identity, issuer, C1_REGISTRAR)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"] == "2"  # 30 per minute: a token every 2 s
    assert (refused.json()["code"], refused.json()["retry_after"]) == ("rate_limited", 2)
    assert "66100200" not in refused.text
    # A batch is one more lookup by the same caller under the same limit, whatever its size.
    batch = {"residents": [{"national_id": "V-66.555.001", "birth_date": "1980-01-01", "council_code": COUNCIL}]}
    limited = await identity.client.post("/v1/residents:batch", json=batch, headers=person(issuer, C1_REGISTRAR))
    assert limited.status_code == 429
    # Another registrar is not held up; the bucket refills.
    assert (await register(identity, issuer, C2_REGISTRAR, "VE.01.01.C2.CC1")).status_code == 403
    clock.now += 2.0
    assert (await register(identity, issuer, C1_REGISTRAR)).status_code == 409
    assert (await register(identity, issuer, C1_REGISTRAR)).status_code == 429


async def test_repeated_registrations_of_a_registered_person_are_logged_without_the_document(
    identity: RunningService, issuer: TestIssuer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(BURST):
        assert (await register(identity, issuer, C1_REGISTRAR)).status_code == 409
    assert (await register(identity, issuer, C1_REGISTRAR)).status_code == 429
    repeated = [r for r in caplog.records if r.name == "comuna_platform.rate_limit" and r.levelno == logging.WARNING]
    assert [(r.__dict__["failures"], r.__dict__["reason"]) for r in repeated] == [(3, "resident_exists")]
    assert repeated[0].__dict__["caller"] == f"subject:{C1_REGISTRAR}"
    assert any(r.name == "comuna_platform.rate_limit" and r.levelno == logging.INFO for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert "66100200" not in text and "66.100.200" not in text


async def test_a_registered_person_out_of_scope_is_refused_as_out_of_scope(
    identity: RunningService, issuer: TestIssuer, clock: Clock
) -> None:
    """DOC lives in C1. A registrar of C2 registering DOC in C2's council (which it covers) must not
    learn that DOC is in the census, let alone where: the refusal is any scope refusal's."""
    before = await count(identity, Resident)
    hidden = await register(identity, issuer, C2_REGISTRAR, "VE.01.01.C2.CC1")
    # The reference: a registrar (of C1) asking for the same council, outside its scope.
    genuine = await identity.client.post(
        "/v1/residents",
        json={"national_id": "V-66.555.002", "birth_date": "1980-01-01", "council_code": "VE.01.01.C2.CC1"},
        headers=person(issuer, C1_REGISTRAR),
    )
    assert (hidden.status_code, genuine.status_code) == (403, 403)
    assert hidden.headers["content-type"] == genuine.headers["content-type"]
    shape = {key: value for key, value in hidden.json().items() if key not in {"instance", "trace_id"}}
    reference = {key: value for key, value in genuine.json().items() if key not in {"instance", "trace_id"}}
    assert shape == reference  # same type, title, code and detail (the council of the request)
    assert shape["code"] == "forbidden_territory"
    assert "VE.01.01.C1" not in hidden.text and "resident_exists" not in hidden.text and "66100200" not in hidden.text
    # In a batch among new people too, and nothing is written.
    batch = {
        "residents": [
            {"national_id": "V-66.555.003", "birth_date": "1980-01-01", "council_code": "VE.01.01.C2.CC1"},
            {"national_id": DOC, "birth_date": "1980-01-01", "council_code": "VE.01.01.C2.CC1"},
        ]
    }
    refused = await identity.client.post("/v1/residents:batch", json=batch, headers=person(issuer, C2_REGISTRAR))
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_territory")
    assert await count(identity, Resident) == before
    # Each probe is a failed lookup of this caller, counted like any other.
    failures = identity.runtime.rate_limiter.failures
    assert failures.count(DOCUMENT_LOOKUPS, f"subject:{C2_REGISTRAR}") == 2
    # A registrar covering DOC's council still hears that it is registered.
    assert (await register(identity, issuer, C1_REGISTRAR)).json()["code"] == "resident_exists"


async def move(
    identity: RunningService, issuer: TestIssuer, subject: str, council: str = COUNCIL, doc: str = DOC
) -> Response:
    body = {"national_id": doc, "council_code": council, "valid_from": "2025-01-01"}
    return await identity.client.post("/v1/residents:move", json=body, headers=person(issuer, subject))


async def test_moving_is_a_lookup_limited_per_registrar(
    identity: RunningService, issuer: TestIssuer, clock: Clock
) -> None:
    # DOC lives in COUNCIL already: each move there changes nothing, and takes a token all the same.
    answers = [await move(identity, issuer, C1_REGISTRAR) for _ in range(BURST)]
    assert [(r.status_code, r.json()["moved"]) for r in answers] == [(200, False)] * BURST
    refused = await move(identity, issuer, C1_REGISTRAR)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"] == "2"  # 30 per minute: a token every 2 s
    assert (refused.json()["code"], refused.json()["retry_after"]) == ("rate_limited", 2)
    assert "66100200" not in refused.text
    # The same caller's other lookups by document share the bucket.
    register_refused = await register(identity, issuer, C1_REGISTRAR)
    assert register_refused.status_code == 429
    # Another registrar is not held up; the bucket refills.
    assert (await move(identity, issuer, C2_REGISTRAR, "VE.01.01.C2.CC1")).status_code == 403
    clock.now += 2.0
    assert (await move(identity, issuer, C1_REGISTRAR)).status_code == 200
    assert (await move(identity, issuer, C1_REGISTRAR)).status_code == 429


def without_instance(response: Response) -> dict[str, object]:
    return {key: value for key, value in response.json().items() if key not in {"instance", "trace_id"}}


async def test_moving_someone_out_of_scope_does_not_say_where_they_live(
    identity: RunningService, issuer: TestIssuer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """DOC lives in C1's council. A registrar of C2 moving DOC into C2's council (which it covers)
    is refused, and the refusal names C2's council, exactly as any scope refusal of that request."""
    caplog.set_level(logging.INFO)
    before = await count(identity, ResidentResidence)
    hidden = await move(identity, issuer, C2_REGISTRAR, "VE.01.01.C2.CC1")
    # The reference: a registrar (of C1) asking for the same council, outside its own scope.
    genuine = await move(identity, issuer, C1_REGISTRAR, "VE.01.01.C2.CC1", doc="V-66.555.010")
    assert (hidden.status_code, genuine.status_code) == (403, 403)
    assert hidden.headers["content-type"] == genuine.headers["content-type"] == "application/problem+json"
    assert without_instance(hidden) == without_instance(genuine)
    assert hidden.json()["code"] == "forbidden_territory"
    assert "VE.01.01.C2.CC1" in hidden.json()["detail"]
    for revealing in ("VE.01.01.C1", "Consejo Uno", "Comuna Uno", "66100200", "66.100.200"):
        assert revealing not in hidden.text
    # Nothing written: DOC still lives in COUNCIL, from when it was registered.
    assert await count(identity, ResidentResidence) == before
    assert (await move(identity, issuer, C1_REGISTRAR)).json()["moved"] is False
    # Each refusal of a person is a failed lookup of this caller: out of scope, or not in the census.
    unknown = await move(identity, issuer, C2_REGISTRAR, "VE.01.01.C2.CC1", doc="V-66.555.011")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "resident_not_found")
    assert (await move(identity, issuer, C2_REGISTRAR, "VE.01.01.C2.CC1")).status_code == 403
    failures = identity.runtime.rate_limiter.failures
    assert failures.count(DOCUMENT_LOOKUPS, f"subject:{C2_REGISTRAR}") == 3
    # A refusal of the request's own council is no lookup of a person: not counted.
    assert failures.count(DOCUMENT_LOOKUPS, f"subject:{C1_REGISTRAR}") == 0
    repeated = [r for r in caplog.records if r.name == "comuna_platform.rate_limit" and r.levelno == logging.WARNING]
    assert [(r.__dict__["failures"], r.__dict__["reason"]) for r in repeated] == [(3, "resident_out_of_scope")]
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert "66100200" not in text and "66.100.200" not in text and "VE.01.01.C1" not in text


async def test_looking_up_someone_out_of_scope_to_enrol_is_a_failed_lookup(
    identity: RunningService, issuer: TestIssuer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """DOC lives in C1's council: a registrar of C2 linking or issuing a code for DOC is refused as
    if DOC were not in the census, and each try counts as a failed lookup (logged as out of scope,
    without the document)."""
    caplog.set_level(logging.INFO)
    link = {"national_id": DOC, "subject": str(uuid.uuid4())}
    answers = [
        await identity.client.post("/v1/residents:link", json=link, headers=person(issuer, C2_REGISTRAR)),
        await identity.client.post(
            "/v1/residents:enrolment-code", json={"national_id": DOC}, headers=person(issuer, C2_REGISTRAR)
        ),
        await identity.client.post("/v1/residents:link", json=link, headers=person(issuer, C2_REGISTRAR)),
    ]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [(404, "resident_not_found")] * BURST
    failures = identity.runtime.rate_limiter.failures
    assert failures.count(DOCUMENT_LOOKUPS, f"subject:{C2_REGISTRAR}") == BURST
    repeated = [r for r in caplog.records if r.name == "comuna_platform.rate_limit" and r.levelno == logging.WARNING]
    assert [(r.__dict__["failures"], r.__dict__["reason"]) for r in repeated] == [(3, "resident_out_of_scope")]
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert "66100200" not in text and "66.100.200" not in text and "VE.01.01.C1" not in text
    limited = await identity.client.post("/v1/residents:link", json=link, headers=person(issuer, C2_REGISTRAR))
    assert limited.status_code == 429


def import_file(council: str = COUNCIL, doc: str = "66100200") -> bytes:
    """A census file of DOC in `council` from today (the register's first day here)."""
    today = datetime.now(UTC).date().isoformat()
    header = "document_type,document_number,birth_date,council_code,valid_from"
    return f"{header}\nV,{doc},1980-01-01,{council},{today}\n".encode()


async def import_census(identity: RunningService, issuer: TestIssuer, subject: str, body: bytes) -> Response:
    headers = {**person(issuer, subject), "content-type": "text/csv"}
    return await identity.client.post("/v1/residents:import", content=body, headers=headers)


async def test_importing_is_a_lookup_limited_per_registrar(
    identity: RunningService, issuer: TestIssuer, clock: Clock
) -> None:
    # DOC lives in COUNCIL already: each import of it there changes nothing, and takes a token all the same.
    answers = [await import_census(identity, issuer, C1_REGISTRAR, import_file()) for _ in range(BURST)]
    assert [(r.status_code, r.json()["rows"], r.json()["changes"]) for r in answers] == [(200, 1, 0)] * BURST
    refused = await import_census(identity, issuer, C1_REGISTRAR, import_file())
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"] == "2"  # 30 per minute: a token every 2 s
    assert (refused.json()["code"], refused.json()["retry_after"]) == ("rate_limited", 2)
    assert "66100200" not in refused.text
    # Refused before the body is read: a file that is no census file at all gets the same 429, not a 422.
    assert (await import_census(identity, issuer, C1_REGISTRAR, b"not,a,census\n")).status_code == 429
    # The same caller's other lookups by document share the bucket.
    assert (await move(identity, issuer, C1_REGISTRAR)).status_code == 429
    # Another registrar is not held up; the bucket refills.
    other = await import_census(identity, issuer, C2_REGISTRAR, import_file("VE.01.01.C2.CC1"))
    assert (other.status_code, other.json()["code"]) == (403, "forbidden_territory")
    clock.now += 2.0
    assert (await import_census(identity, issuer, C1_REGISTRAR, import_file())).status_code == 200
    assert (await import_census(identity, issuer, C1_REGISTRAR, import_file())).status_code == 429


async def test_an_import_moving_someone_out_of_scope_is_a_failed_lookup_logged_without_the_document(
    identity: RunningService, issuer: TestIssuer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """DOC lives in C1's council: a registrar of C2 importing a file that moves DOC into C2's council
    (which it covers) is refused with the one 403 of such files, and each try is a failed lookup."""
    caplog.set_level(logging.INFO)
    before = await count(identity, Resident), await count(identity, ResidentResidence)
    answers = [
        await import_census(identity, issuer, C2_REGISTRAR, import_file("VE.01.01.C2.CC1")) for _ in range(BURST)
    ]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [(403, "forbidden_territory")] * BURST
    for revealing in ("VE.01.01.C1", "Consejo Uno", "66100200", "66.100.200"):
        assert revealing not in answers[0].text
    assert (await count(identity, Resident), await count(identity, ResidentResidence)) == before
    failures = identity.runtime.rate_limiter.failures
    assert failures.count(DOCUMENT_LOOKUPS, f"subject:{C2_REGISTRAR}") == BURST
    # A file naming a council outside the caller's scope says nothing of anyone: refused, not counted.
    own = await import_census(identity, issuer, C1_REGISTRAR, import_file("VE.01.01.C2.CC1", "66555021"))
    assert (own.status_code, own.json()["code"]) == (403, "forbidden_territory")
    assert failures.count(DOCUMENT_LOOKUPS, f"subject:{C1_REGISTRAR}") == 0
    repeated = [r for r in caplog.records if r.name == "comuna_platform.rate_limit" and r.levelno == logging.WARNING]
    assert [(r.__dict__["failures"], r.__dict__["reason"]) for r in repeated] == [(3, "resident_out_of_scope")]
    assert repeated[0].__dict__["caller"] == f"subject:{C2_REGISTRAR}"
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert "66100200" not in text and "66.100.200" not in text and "VE.01.01.C1" not in text
    # The bucket ran dry on those tries like on any other lookup.
    assert (await import_census(identity, issuer, C2_REGISTRAR, import_file("VE.01.01.C2.CC1"))).status_code == 429
