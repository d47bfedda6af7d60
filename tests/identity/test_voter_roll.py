"""The frozen voter roll, against real PostgreSQL and a real gRPC server: who is on it at the
cut-off, its digest (recomputed independently), the stream (resumable, the same bytes every
time), idempotent freezing, public counts and "can I vote?" for oneself only."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
import pytest_asyncio
from sqlalchemy import text

from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_identity.domain.roll_keys import RollSecret, login_entry
from comuna_identity.service import SPEC
from comuna_platform.documents import normalise_document
from comuna_platform.rpc import error_code_of
from comuna_platform.voter_keys import document_point, multiply, scalar_from
from comuna_platform.voter_roll import ENTRY_BYTES, roll_digest
from tests.identity.conftest import ROLL_SECRET
from tests.identity.test_registry_api import registrar, seed
from tests.support.grpc_server import grpc_server
from tests.support.identity import person
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

# The cut-off is today: territories registered by the test exist from today on, and a roll
# whose cut-off is still ahead is only prepared, never frozen.
CUTOFF = datetime.now(UTC).date()
VOTING_DAY = CUTOFF + timedelta(days=28)


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return date(day.year - years, 3, 1)


LINKED_SUBJECT = "roll-test-linked-resident"
EXTRA = [
    ("VE.01.01.C1.CC2", "Consejo Uno-Dos", "communal_council", "VE.01.01.C1"),
    ("VE.01.01.C9", "Comuna Nueve", "commune", "VE.01.01"),
    ("VE.01.01.C9.CC1", "Consejo Nueve", "communal_council", "VE.01.01.C9"),
]


@dataclass(frozen=True)
class Person:
    document: str
    birth: date
    # (council code, valid_from, valid_until)
    residences: tuple[tuple[str, date, date | None], ...]
    status: str = "active"


ALWAYS = date(1990, 1, 1)
PEOPLE = {
    "adult": Person("V8100001", date(1980, 5, 17), (("VE.01.01.C1.CC1", ALWAYS, None),)),
    "fifteen_on_voting_day": Person("V8100002", years_before(VOTING_DAY, 15), (("VE.01.01.C1.CC2", ALWAYS, None),)),
    "fifteen_the_day_after": Person(
        "V8100003", years_before(VOTING_DAY, 15) + timedelta(days=1), (("VE.01.01.C1.CC1", ALWAYS, None),)
    ),
    "inactive": Person("V8100004", date(1970, 1, 1), (("VE.01.01.C1.CC1", ALWAYS, None),), status="inactive"),
    "moved_before_cutoff": Person(
        "V8100005",
        date(1970, 1, 1),
        (
            ("VE.01.01.C1.CC1", ALWAYS, CUTOFF - timedelta(days=10)),
            ("VE.01.01.C2.CC1", CUTOFF - timedelta(days=10), None),
        ),
    ),
    "moves_on_the_day_after": Person(
        "V8100006",
        date(1970, 1, 1),
        (
            ("VE.01.01.C1.CC1", ALWAYS, CUTOFF + timedelta(days=1)),
            ("VE.01.01.C2.CC1", CUTOFF + timedelta(days=1), None),
        ),
    ),
    "other_commune": Person("V8100007", date(1970, 1, 1), (("VE.01.01.C9.CC1", ALWAYS, None),)),
    "linked": Person("E8100008", date(1990, 1, 1), (("VE.01.01.C2.CC1", ALWAYS, None),)),
    "arrived_after_cutoff": Person(
        "V8100009", date(1970, 1, 1), (("VE.01.01.C1.CC1", CUTOFF + timedelta(days=1), None),)
    ),
}
# Who is on the roll, and where (council code).
EXPECTED = {
    "adult": "VE.01.01.C1.CC1",
    "fifteen_on_voting_day": "VE.01.01.C1.CC2",
    "moved_before_cutoff": "VE.01.01.C2.CC1",
    "moves_on_the_day_after": "VE.01.01.C1.CC1",
    "linked": "VE.01.01.C2.CC1",
}


@dataclass
class Roll:
    stub: identity_pb2_grpc.IdentityServiceStub
    ids: dict[str, uuid.UUID]
    consultation_id: uuid.UUID
    request: pb.FreezeRollRequest


def service_token(issuer: TestIssuer) -> list[tuple[str, str]]:
    token = issuer.token(roles=["service"], territories=["VE"], client_id="svc-consultations")
    return [("authorization", f"Bearer {token}")]


def roll_base(document: str) -> bytes:
    return multiply(scalar_from(ROLL_SECRET.encode(), "roll-base"), document_point(normalise_document(document)))


async def territory_ids(identity: RunningService, codes: list[str]) -> dict[str, uuid.UUID]:
    ids = {}
    for code in codes:
        response = await identity.client.get(f"/v1/territories/{code}")
        assert response.status_code == 200, response.text
        ids[code] = uuid.UUID(response.json()["id"])
    return ids


async def seed_people(identity: RunningService, ids: dict[str, uuid.UUID]) -> dict[str, uuid.UUID]:
    """Residents written straight into the census tables (the schema contract), roll bases
    computed as the import does: each case needs dates and statuses the import would not set."""
    resident_ids = {}
    async with identity.runtime.db.transaction() as session:
        for name, p in PEOPLE.items():
            resident_id = uuid.uuid4()
            resident_ids[name] = resident_id
            await session.execute(
                text(
                    "INSERT INTO residents (id, document_key_id, document_hash, roll_base, birth_date, status,"
                    " status_since) VALUES (:id, 1, :hash, :base, :birth, :status, :since)"
                ),
                {
                    "id": resident_id,
                    "hash": uuid.uuid4().bytes * 2,
                    "base": roll_base(p.document),
                    "birth": p.birth,
                    "status": p.status,
                    "since": ALWAYS,
                },
            )
            for council, valid_from, valid_until in p.residences:
                await session.execute(
                    text(
                        "INSERT INTO resident_residences (id, resident_id, council_id, valid_from, valid_until)"
                        " VALUES (:id, :resident, :council, :f, :u)"
                    ),
                    {
                        "id": uuid.uuid4(),
                        "resident": resident_id,
                        "council": ids[council],
                        "f": valid_from,
                        "u": valid_until,
                    },
                )
        await session.execute(
            text("INSERT INTO resident_accounts (subject, resident_id, linked_by) VALUES (:s, :r, 'test')"),
            {"s": LINKED_SUBJECT, "r": resident_ids["linked"]},
        )
    return resident_ids


@pytest_asyncio.fixture(scope="module")
async def roll(identity: RunningService, issuer: TestIssuer) -> AsyncIterator[Roll]:
    await seed(identity, issuer)
    for code, name, kind, parent in EXTRA:
        body = {"code": code, "name": name, "kind": kind, "parent_code": parent}
        response = await identity.client.post("/v1/territories", json=body, headers=registrar(issuer))
        assert response.status_code in (201, 409), response.text
    councils = sorted({council for p in PEOPLE.values() for council, _, _ in p.residences})
    ids = await territory_ids(identity, [*councils, "VE.01.01.C1", "VE.01.01.C2", "VE.01.01.C9"])
    await seed_people(identity, ids)
    consultation_id = uuid.uuid4()
    request = pb.FreezeRollRequest(
        consultation_id=str(consultation_id),
        cutoff=CUTOFF.isoformat(),
        voting_day=VOTING_DAY.isoformat(),
        commune_ids=[str(ids["VE.01.01.C1"]), str(ids["VE.01.01.C2"])],
    )
    async with grpc_server(SPEC, identity) as target, grpc.aio.insecure_channel(target) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        summary = await stub.FreezeRoll(request, metadata=service_token(issuer))
        assert summary.status in ("preparing", "frozen")
        await frozen(stub, issuer, consultation_id)
        yield Roll(stub, ids, consultation_id, request)


async def frozen(
    stub: identity_pb2_grpc.IdentityServiceStub, issuer: TestIssuer, consultation_id: uuid.UUID
) -> pb.GetRollResponse:
    deadline = time.monotonic() + 60
    while True:
        reply: pb.GetRollResponse = await stub.GetRoll(
            pb.GetRollRequest(consultation_id=str(consultation_id)), metadata=service_token(issuer)
        )
        if reply.summary.status == "frozen":
            return reply
        assert time.monotonic() < deadline, "the roll was not frozen within 60 s"
        await asyncio.sleep(0.1)


async def stream(roll: Roll, issuer: TestIssuer, *, after_seq: int = 0, chunk_size: int = 0) -> list[pb.RollChunk]:
    request = pb.StreamRollRequest(
        consultation_id=str(roll.consultation_id), after_seq=after_seq, chunk_size=chunk_size
    )
    return [chunk async for chunk in roll.stub.StreamRoll(request, metadata=service_token(issuer))]


def entry_key(consultation_id: uuid.UUID, document: str) -> bytes:
    keys = RollSecret(ROLL_SECRET.encode()).for_consultation(consultation_id)
    return multiply(keys.voter_key, document_point(normalise_document(document)))


async def test_the_roll_holds_exactly_the_eligible_residents_where_they_lived_at_the_cutoff(
    roll: Roll, issuer: TestIssuer
) -> None:
    reply = await frozen(roll.stub, issuer, roll.consultation_id)
    packed = b"".join(c.entries for c in await stream(roll, issuer))
    entries = {
        packed[at : at + 32]: (
            packed[at + 32 : at + 64],
            uuid.UUID(bytes=packed[at + 64 : at + 80]),
            uuid.UUID(bytes=packed[at + 80 : at + 96]),
        )
        for at in range(0, len(packed), ENTRY_BYTES)
    }
    # Consultations' view: t_c and a document give the entry, wherever the person is on it.
    t_c = reply.voter_key
    found = {}
    for name, p in PEOPLE.items():
        key = multiply(t_c, document_point(normalise_document(p.document)))
        if key in entries:
            found[name] = entries[key]
    assert {name: council for name, (_, _, council) in found.items()} == {
        name: roll.ids[council] for name, council in EXPECTED.items()
    }
    for name, (_, commune, _council) in found.items():
        assert commune == roll.ids[EXPECTED[name].rsplit(".", 1)[0]]
    assert reply.summary.entry_count == len(EXPECTED) == len(entries)
    # Only the linked resident carries a login key, HMAC(L_c, subject).
    logins = {name: login for name, (login, _, _) in found.items() if login != bytes(32)}
    assert logins == {"linked": login_entry(reply.login_key, LINKED_SUBJECT)}


async def test_digest_is_recomputable_from_the_entries_and_published_with_the_counts(
    roll: Roll, identity: RunningService, issuer: TestIssuer
) -> None:
    reply = await frozen(roll.stub, issuer, roll.consultation_id)
    keys = RollSecret(ROLL_SECRET.encode()).for_consultation(roll.consultation_id)
    expected = []
    for name, council in EXPECTED.items():
        login = login_entry(keys.login_key, LINKED_SUBJECT) if name == "linked" else None
        commune = roll.ids[council.rsplit(".", 1)[0]]
        expected.append((entry_key(roll.consultation_id, PEOPLE[name].document), login, commune, roll.ids[council]))
    assert reply.summary.digest == roll_digest(roll.consultation_id, expected)

    public = await identity.client.get(f"/v1/rolls/{roll.consultation_id}")
    assert public.status_code == 200, public.text
    body = public.json()
    assert body["digest"] == reply.summary.digest and body["entry_count"] == 5 and body["cutoff"] == CUTOFF.isoformat()
    by_commune = {c["commune_id"]: c for c in body["communes"]}
    c1, c2 = str(roll.ids["VE.01.01.C1"]), str(roll.ids["VE.01.01.C2"])
    assert {k: v["voters"] for k, v in by_commune.items()} == {c1: 3, c2: 2}
    assert sorted((c["council_id"], c["voters"]) for c in by_commune[c1]["councils"]) == sorted(
        [(str(roll.ids["VE.01.01.C1.CC1"]), 2), (str(roll.ids["VE.01.01.C1.CC2"]), 1)]
    )
    assert (await identity.client.get(f"/v1/rolls/{uuid.uuid4()}")).status_code == 404


async def test_stream_is_resumable_and_gives_the_same_chunks_every_time(roll: Roll, issuer: TestIssuer) -> None:
    whole = b"".join(c.entries for c in await stream(roll, issuer))
    small = await stream(roll, issuer, chunk_size=2)
    assert [c.first_seq for c in small] == [1, 3, 5]
    assert b"".join(c.entries for c in small) == whole
    assert await stream(roll, issuer, chunk_size=2) == small
    resumed = await stream(roll, issuer, after_seq=3, chunk_size=2)
    assert [c.first_seq for c in resumed] == [4]
    assert b"".join(c.entries for c in resumed) == whole[3 * ENTRY_BYTES :]
    assert await stream(roll, issuer, after_seq=5) == []
    assert {c.entry_count for c in small} == {5}


async def test_freezing_again_is_idempotent_and_another_cutoff_is_refused(roll: Roll, issuer: TestIssuer) -> None:
    before = await frozen(roll.stub, issuer, roll.consultation_id)
    again = await roll.stub.FreezeRoll(roll.request, metadata=service_token(issuer))
    assert again.digest == before.summary.digest and again.entry_count == 5 and again.status == "frozen"
    other = pb.FreezeRollRequest()
    other.CopyFrom(roll.request)
    other.cutoff = (CUTOFF - timedelta(days=1)).isoformat()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await roll.stub.FreezeRoll(other, metadata=service_token(issuer))
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_code_of(refused.value) == "roll_cutoff_conflict"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"cutoff": "2026-13-01"}, grpc.StatusCode.INVALID_ARGUMENT, "invalid_date"),
        (
            {"cutoff": (VOTING_DAY + timedelta(days=1)).isoformat()},
            grpc.StatusCode.INVALID_ARGUMENT,
            "roll_dates_invalid",
        ),
        ({"consultation_id": "nope"}, grpc.StatusCode.INVALID_ARGUMENT, "invalid_id"),
        ({"commune_ids": []}, grpc.StatusCode.INVALID_ARGUMENT, "communes_required"),
        ({"commune_ids": [str(uuid.UUID(int=7))]}, grpc.StatusCode.NOT_FOUND, "commune_not_found"),
    ],
)
async def test_bad_freeze_requests_are_refused_with_their_code(
    roll: Roll, issuer: TestIssuer, change: dict[str, object], status: grpc.StatusCode, code: str
) -> None:
    fields: dict[str, object] = {
        "consultation_id": str(uuid.uuid4()),
        "cutoff": CUTOFF.isoformat(),
        "voting_day": VOTING_DAY.isoformat(),
        "commune_ids": list(roll.request.commune_ids),
        **change,
    }
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await roll.stub.FreezeRoll(pb.FreezeRollRequest(**fields), metadata=service_token(issuer))  # type: ignore[arg-type]
    assert refused.value.code() == status
    assert error_code_of(refused.value) == code


async def test_stream_of_an_unknown_roll_is_not_found(roll: Roll, issuer: TestIssuer) -> None:
    request = pb.StreamRollRequest(consultation_id=str(uuid.uuid4()))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        _ = [c async for c in roll.stub.StreamRoll(request, metadata=service_token(issuer))]
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_code_of(refused.value) == "roll_not_found"


async def test_can_i_vote_answers_for_the_signed_in_resident_only(
    roll: Roll, identity: RunningService, issuer: TestIssuer
) -> None:
    mine = await identity.client.get(
        "/v1/me/roll", params={"consultation_id": str(roll.consultation_id)}, headers=person(issuer, LINKED_SUBJECT)
    )
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["on_roll"] is True
    assert body["commune"]["code"] == "VE.01.01.C2" and body["council"]["code"] == "VE.01.01.C2.CC1"
    assert body["polling_place"]["kind"] == "communal_council" and "not defined yet" in body["polling_place"]["note"]
    # Someone without a linked census record learns nothing, and no parameter names a person.
    stranger = await identity.client.get(
        "/v1/me/roll",
        params={"consultation_id": str(roll.consultation_id), "subject": LINKED_SUBJECT},
        headers=person(issuer, "someone-else"),
    )
    assert stranger.status_code == 404 and stranger.json()["code"] == "resident_not_linked"
    anonymous = await identity.client.get("/v1/me/roll", params={"consultation_id": str(roll.consultation_id)})
    assert anonymous.status_code == 401
    unknown = await identity.client.get(
        "/v1/me/roll", params={"consultation_id": str(uuid.uuid4())}, headers=person(issuer, LINKED_SUBJECT)
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "roll_not_found"


async def test_a_resident_off_the_roll_is_told_so(roll: Roll, identity: RunningService, issuer: TestIssuer) -> None:
    async with identity.runtime.db.transaction() as session:
        resident = (
            await session.execute(
                text("SELECT id FROM residents WHERE birth_date = :b"), {"b": PEOPLE["fifteen_the_day_after"].birth}
            )
        ).scalar_one()
        await session.execute(
            text(
                "INSERT INTO resident_accounts (subject, resident_id, linked_by) VALUES ('roll-test-young', :r, 'test')"
            ),
            {"r": resident},
        )
    mine = await identity.client.get(
        "/v1/me/roll", params={"consultation_id": str(roll.consultation_id)}, headers=person(issuer, "roll-test-young")
    )
    assert mine.status_code == 200
    assert mine.json()["on_roll"] is False and mine.json()["polling_place"] is None


async def test_the_database_refuses_keys_or_entries_of_a_roll_that_does_not_exist(
    roll: Roll, identity: RunningService
) -> None:
    """Checked once per statement (migration 0008), for COPY-sized writes as for single rows."""
    missing = uuid.uuid4()
    statements = [
        (
            "INSERT INTO voter_roll_keys (consultation_id, resident_id, voter_key)"
            " SELECT CAST(:c AS uuid), gen_random_uuid(), gen_random_bytes_32 FROM ("
            "  SELECT decode(lpad(to_hex(i), 64, '0'), 'hex') AS gen_random_bytes_32 FROM generate_series(1, 3) i) k"
        ),
        (
            "INSERT INTO voter_roll_entries (consultation_id, seq, voter_key, commune_id, council_id)"
            " VALUES (CAST(:c AS uuid), 1, decode(repeat('ab', 32), 'hex'), gen_random_uuid(), gen_random_uuid())"
        ),
    ]
    for statement in statements:
        with pytest.raises(Exception, match="for a voter roll that does not exist"):
            async with identity.runtime.db.transaction() as session:
                await session.execute(text(statement), {"c": missing})
    # Moving the real roll's entries onto a missing roll is refused too.
    with pytest.raises(Exception, match="for a voter roll that does not exist"):
        async with identity.runtime.db.transaction() as session:
            await session.execute(
                text("UPDATE voter_roll_entries SET consultation_id = :m WHERE consultation_id = :c"),
                {"m": missing, "c": roll.consultation_id},
            )
    async with identity.runtime.db.transaction() as session:
        kept = (
            await session.execute(
                text("SELECT count(*) FROM voter_roll_entries WHERE consultation_id = :c"), {"c": roll.consultation_id}
            )
        ).scalar_one()
    assert kept == len(EXPECTED)


async def test_deleting_a_roll_deletes_its_keys_and_entries(roll: Roll, identity: RunningService) -> None:
    copy = uuid.uuid4()
    async with identity.runtime.db.transaction() as session:
        # A copy of the frozen roll under another id, with its entries.
        await session.execute(
            text(
                "INSERT INTO voter_rolls SELECT"
                " (jsonb_populate_record(r, jsonb_build_object('consultation_id', CAST(:n AS text)))).*"
                " FROM voter_rolls r WHERE consultation_id = :c"
            ),
            {"n": str(copy), "c": roll.consultation_id},
        )
        for table in ("voter_roll_entries", "voter_roll_keys"):
            await session.execute(
                text(
                    f"INSERT INTO {table} SELECT"
                    " (jsonb_populate_record(e, jsonb_build_object('consultation_id', CAST(:n AS text)))).*"
                    f" FROM {table} e WHERE consultation_id = :c"
                ),
                {"n": str(copy), "c": roll.consultation_id},
            )
    async with identity.runtime.db.transaction() as session:
        await session.execute(text("DELETE FROM voter_rolls WHERE consultation_id = :n"), {"n": copy})
    async with identity.runtime.db.transaction() as session:
        left = [
            (
                await session.execute(text(f"SELECT count(*) FROM {t} WHERE consultation_id = :n"), {"n": copy})
            ).scalar_one()
            for t in ("voter_roll_entries", "voter_roll_keys")
        ]
        kept = (
            await session.execute(
                text("SELECT count(*) FROM voter_roll_entries WHERE consultation_id = :c"), {"c": roll.consultation_id}
            )
        ).scalar_one()
    assert left == [0, 0]
    assert kept == len(EXPECTED)
