"""Certifying a country-sized consultation: 2,000 communes of 7 candidates each, seeded directly in
the consultations database (identity and the ballot path are tested elsewhere).

No message may grow with the country: every event the relay puts on NATS must stay far below
NATS's 1 MB payload limit (one event per commune, plus a summary), and gRPC serves the results
in pages far below gRPC's 4 MB limit.

The module runs its own NATS server: thousands of events left on the session's shared streams
would be replayed by every later test module's durable consumers (funding's, from the start).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import nats
import pytest
import pytest_asyncio
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import func, insert, select

from comuna.consultations.v1 import consultations_pb2 as pb
from comuna.consultations.v1 import consultations_pb2_grpc, events_pb2
from comuna_consultations.lifecycle.storage import insert_communes
from comuna_consultations.results.grpc import certified_page
from comuna_consultations.results.usecases import MAX_PAGE_SIZE
from comuna_consultations.service import SPEC as CONSULTATIONS
from comuna_consultations.storage import repository
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.events import outbox_table
from comuna_platform.uow import UnitOfWork
from tests.consultations.conftest import open_stack
from tests.consultations.helpers import Stack, next_code, operator, transition
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

COMMUNES = 2_000
CANDIDATES = 7
# Communes with ballots (the others cast none and have no winner).
VOTING_COMMUNES = 1_800
NATS_MAX_PAYLOAD = 1024 * 1024
GRPC_MAX_RECEIVE = 4 * 1024 * 1024
# "Well under": a tenth of NATS's limit for every event (they are a few KB).
EVENT_BUDGET = NATS_MAX_PAYLOAD // 10


@dataclass(frozen=True)
class Seeded:
    consultation_id: uuid.UUID
    code: str
    # commune id -> (code, winning candidate id or None)
    communes: dict[uuid.UUID, tuple[str, uuid.UUID | None]]
    ballots: int


async def _seed(stack: Stack) -> Seeded:
    """A closed consultation: 2,000 communes x 7 candidates with 200-character titles; in the
    first 1,800 communes candidate k gets k ballots, so the 7th-priority candidate wins."""
    consultation_id, code = uuid.uuid4(), next_code()
    now = datetime.now(UTC)
    communes: dict[uuid.UUID, tuple[str, uuid.UUID | None]] = {}
    commune_rows, candidate_rows, ballot_rows = [], [], []
    for i in range(COMMUNES):
        commune_id, commune_code = uuid.uuid4(), f"VE.90.{i // 100:02d}.C{i:04d}"
        commune_rows.append(
            {
                "consultation_id": consultation_id,
                "commune_id": commune_id,
                "code": commune_code,
                "name": f"Comuna {i:04d}",
            }
        )
        winner = None
        for priority in range(1, CANDIDATES + 1):
            candidate_id = uuid.uuid4()
            candidate_rows.append(
                {
                    "id": candidate_id,
                    "consultation_id": consultation_id,
                    "commune_id": commune_id,
                    "title": (f"{priority} " + "Proyecto de agua potable y saneamiento " * 6)[:200],
                    "description": "",
                    "assembly_priority": priority,
                    "category": "water",
                    "estimated_cost": 100_000,
                }
            )
            if i < VOTING_COMMUNES:
                ballot_rows += [
                    {
                        "id": uuid.uuid4(),
                        "consultation_id": consultation_id,
                        "commune_id": commune_id,
                        "candidate_id": candidate_id,
                        "channel": "online",
                    }
                    for _ in range(priority)
                ]
                winner = candidate_id
        communes[commune_id] = (commune_code, winner)
    async with stack.consultations.runtime.db.transaction() as session:
        await session.execute(
            insert(repository.consultations).values(
                id=consultation_id,
                code=code,
                title="Consulta nacional",
                status="open",
                assemblies_open_at=now - timedelta(days=60),
                candidates_close_at=now - timedelta(days=10),
                roll_cutoff_at=now - timedelta(days=10),
                voting_opens_at=now - timedelta(days=2),
                voting_closes_at=now - timedelta(days=1),
                certification_opens_at=now - timedelta(days=1),
                commune_count=COMMUNES,
            )
        )
        await insert_communes(session, commune_rows)
        for start in range(0, len(candidate_rows), 5_000):
            await session.execute(insert(repository.candidates), candidate_rows[start : start + 5_000])
        for start in range(0, len(ballot_rows), 5_000):
            await session.execute(insert(repository.ballots), ballot_rows[start : start + 5_000])
    return Seeded(consultation_id, code, communes, len(ballot_rows))


@pytest.fixture(scope="module")
def private_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(tmp_path_factory.mktemp("nats-large") / "jetstream", free_port()) as server:
        yield server


@pytest_asyncio.fixture(scope="module")
async def stack(
    embedded_postgres: EmbeddedPostgres, private_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Stack]:
    """The consultations stack of conftest, on this module's own NATS server."""
    async with open_stack(embedded_postgres, private_nats, issuer, uuid.uuid4().hex[:10]) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module")
async def certified(stack: Stack, issuer: TestIssuer) -> AsyncIterator[Seeded]:
    seeded = await _seed(stack)
    response = await transition(stack, issuer, str(seeded.consultation_id), "certify")
    assert response.status_code == 200, response.text
    yield seeded


async def _relayed(stack: Stack, consultation_id: uuid.UUID) -> None:
    """Until the outbox relay has published everything (it would be stuck on a too-big event)."""
    async with asyncio.timeout(60):
        while True:
            async with stack.consultations.runtime.db.transaction() as session:
                pending = (
                    await session.execute(
                        select(func.count()).select_from(outbox_table).where(outbox_table.c.published_at.is_(None))
                    )
                ).scalar_one()
            if pending == 0:
                return
            await asyncio.sleep(0.1)


async def test_every_certified_event_is_small_and_one_per_commune(
    stack: Stack, certified: Seeded, private_nats: EmbeddedNats
) -> None:
    await _relayed(stack, certified.consultation_id)
    nc = await nats.connect(private_nats.url)
    try:
        assert nc.max_payload == NATS_MAX_PAYLOAD  # the server's default: what the relay is held to
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            "consultations.>",
            stream="CONSULTATIONS",
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        info = await js.stream_info("CONSULTATIONS")
        received: list[Msg] = []
        while len(received) < info.state.messages:
            received += await sub.fetch(500, timeout=5)
        await sub.unsubscribe()
    finally:
        await nc.close()

    consultation_id = str(certified.consultation_id)
    results: list[events_pb2.CommuneResultCertified] = []
    summaries: list[events_pb2.ConsultationCertified] = []
    for msg in received:
        assert len(msg.data) < EVENT_BUDGET, f"{msg.subject}: {len(msg.data)} bytes"
        headers = msg.headers or {}
        if msg.subject == "consultations.commune_result.certified":
            event = events_pb2.CommuneResultCertified.FromString(msg.data)
            if event.consultation_id == consultation_id:
                assert headers["ce-subject"] == event.result.commune_id
                results.append(event)
        elif msg.subject == "consultations.consultation.certified":
            summary = events_pb2.ConsultationCertified.FromString(msg.data)
            if summary.consultation_id == consultation_id:
                summaries.append(summary)
                # Staged last, so relayed after every commune's result.
                assert len(results) == COMMUNES

    assert len(results) == COMMUNES
    assert {uuid.UUID(e.result.commune_id) for e in results} == set(certified.communes)
    for event in results:
        code, winner = certified.communes[uuid.UUID(event.result.commune_id)]
        assert (event.consultation_code, event.result.commune_code) == (certified.code, code)
        assert event.result.winner_candidate_id == (str(winner) if winner else "")
        assert len(event.result.candidates) == CANDIDATES
    biggest = max(len(e.SerializeToString()) for e in results)
    assert biggest < 4 * 1024, biggest  # a few KB, whatever the number of communes

    [summary] = summaries
    assert (summary.code, summary.ballots, summary.commune_count, summary.communes_with_winner) == (
        certified.code,
        certified.ballots,
        COMMUNES,
        VOTING_COMMUNES,
    )
    assert all(e.certified_at == summary.certified_at for e in results)


async def test_grpc_pages_cover_every_commune_once_under_the_message_limit(
    stack: Stack, certified: Seeded, issuer: TestIssuer
) -> None:
    consultation_id = str(certified.consultation_id)
    service = [
        ("authorization", f"Bearer {issuer.token(roles=['service'], territories=['VE'], client_id='svc-funding')}")
    ]
    async with grpc_server(CONSULTATIONS, stack.consultations) as target, grpc.aio.insecure_channel(target) as ch:
        stub = consultations_pb2_grpc.ConsultationsServiceStub(ch)  # type: ignore[no-untyped-call]

        async def pages(page_size: int) -> list[pb.ListCertifiedResultsResponse]:
            found, token = [], ""
            while True:
                page = await stub.ListCertifiedResults(
                    pb.ListCertifiedResultsRequest(
                        consultation_id=consultation_id, page_size=page_size, page_token=token
                    ),
                    metadata=service,
                )
                found.append(page)
                token = page.next_page_token
                if not token:
                    return found

        # Above the maximum is treated as the maximum.
        for size in (MAX_PAGE_SIZE, 10_000):
            got = await pages(size)
            assert [len(p.results) for p in got] == [MAX_PAGE_SIZE] * (COMMUNES // MAX_PAGE_SIZE)
            assert all(p.ByteSize() < GRPC_MAX_RECEIVE // 2 for p in got)
            codes = [r.commune_code for p in got for r in p.results]
            assert codes == sorted(code for code, _ in certified.communes.values())
            assert all(
                p.summary.communes_with_winner == VOTING_COMMUNES and p.summary.ballots == certified.ballots
                for p in got
            )
        # 0 means the default page size.
        default = await stub.ListCertifiedResults(
            pb.ListCertifiedResultsRequest(consultation_id=consultation_id), metadata=service
        )
        assert len(default.results) == 100 and default.next_page_token


async def test_a_page_is_cut_short_rather_than_grow_past_its_byte_budget(stack: Stack, certified: Seeded) -> None:
    seen: list[str] = []
    after = ""
    async with stack.consultations.runtime.db.transaction() as session:
        while True:
            page = await certified_page(
                UnitOfWork.of(session),
                certified.consultation_id,
                after_code=after,
                page_size=MAX_PAGE_SIZE,
                now=datetime.now(UTC),
                max_bytes=100_000,
            )
            assert 0 < sum(r.ByteSize() for r in page.results) <= 100_000
            assert len(page.results) < MAX_PAGE_SIZE
            seen += [r.commune_code for r in page.results]
            if page.next_after_code is None:
                break
            assert page.next_after_code == page.results[-1].commune_code
            after = page.next_after_code
    assert seen == sorted(code for code, _ in certified.communes.values())


async def test_certification_is_not_repeated(stack: Stack, certified: Seeded, issuer: TestIssuer) -> None:
    again = await stack.consultations.client.post(
        f"/v1/consultations/{certified.consultation_id}:certify", headers=operator(issuer)
    )
    assert again.status_code == 409
    async with stack.consultations.runtime.db.transaction() as session:
        staged = (
            await session.execute(
                select(func.count())
                .select_from(outbox_table)
                .where(
                    outbox_table.c.subject == "consultations.commune_result.certified",
                    outbox_table.c.aggregate_id.in_([str(c) for c in certified.communes]),
                )
            )
        ).scalar_one()
    assert staged == COMMUNES
