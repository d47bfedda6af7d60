"""A whole consultation against real PostgreSQL, NATS and identity: open, record candidates, vote,
close, certify; the certified events, the REST results and the gRPC pages must agree."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import nats
import pytest
from nats.aio.subscription import Subscription

from comuna.consultations.v1 import consultations_pb2 as pb
from comuna.consultations.v1 import consultations_pb2_grpc, events_pb2
from comuna_consultations.service import SPEC as CONSULTATIONS
from comuna_devstack.nats import EmbeddedNats
from comuna_platform.rpc import error_code_of
from tests.consultations.helpers import (
    ADULT,
    SCHEDULE,
    Consultation,
    Stack,
    close_voting,
    open_consultation,
    register_residents,
    rows,
    transition,
    vote,
    voting_consultation,
)
from tests.support.grpc_server import grpc_server
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1, C2, C3 = "VE.01.01.C1", "VE.01.01.C2", "VE.01.02.C3"


async def test_opening_snapshots_every_commune(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    client = stack.consultations.client
    detail = (await client.get(f"/v1/consultations/{consultation.id}")).json()
    assert (detail["status"], detail["phase"]) == ("open", "assemblies")
    assert detail["commune_count"] == 3
    assert detail["voting_opens_at"].startswith(f"{SCHEDULE['voting_opens_at'][:10]}T10:00:00")  # stored, in UTC
    page = (await client.get(f"/v1/consultations/{consultation.id}/communes")).json()
    assert [(c["code"], uuid.UUID(c["commune_id"])) for c in page["items"]] == [
        (code, stack.commune_ids[code]) for code in (C1, C2, C3)
    ]
    listing = (await client.get("/v1/consultations")).json()
    assert consultation.id in [c["id"] for c in listing["items"]]


async def test_full_consultation_certifies_counts_and_ranks(
    stack: Stack, issuer: TestIssuer, embedded_nats: EmbeddedNats
) -> None:
    c1_voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 4)
    c2_voters = await register_residents(stack, issuer, f"{C2}.CC1", ADULT, 2)
    consultation = await voting_consultation(stack, issuer)
    a, b, c = consultation.candidates[C1]
    d, e = consultation.candidates[C2]
    (f,) = consultation.candidates[C3]
    client = stack.consultations.client

    # C1: b gets 2, a and c get 1 each -> b, then a before c (registered earlier: the default tie-break).
    for voter, choice in zip(c1_voters, [b, b, a, c], strict=True):
        response = await vote(stack, issuer, consultation, C1, choice, voter)
        assert response.status_code == 201, response.text
        body = response.json()
        # The receipt is random and not the ballot's id: nothing stored holds it (docs/record.md).
        assert body["receipt"] != body["ballot_id"] and len(body["receipt"]) == 22
        receipt = await client.get(f"/v1/consultations/{consultation.id}/receipts/{body['receipt']}")
        assert (receipt.json()["receipt"], receipt.json()["recorded"]) == (body["receipt"], True)
    # C2: one each -> no cost declared, so the earlier registration wins: d.
    for voter, choice in zip(c2_voters, [e, d], strict=True):
        assert (await vote(stack, issuer, consultation, C2, choice, voter)).status_code == 201
    # C3: candidates but no ballots -> no winner.

    early = await client.get(f"/v1/consultations/{consultation.id}/results")
    assert early.status_code == 409
    assert early.json()["code"] == "voting_not_closed"

    await close_voting(stack, issuer, consultation)
    await _certify_and_read(stack, issuer, embedded_nats, consultation, (a, b, c, d, e, f))


async def _certify_and_read(
    stack: Stack,
    issuer: TestIssuer,
    embedded_nats: EmbeddedNats,
    consultation: Consultation,
    candidates: tuple[str, str, str, str, str, str],
) -> None:
    a, b, c, d, e, f = candidates
    client = stack.consultations.client

    nc = await nats.connect(embedded_nats.url)
    try:
        per_commune = await nc.subscribe("consultations.commune_result.certified")
        summaries = await nc.subscribe("consultations.consultation.certified")
        response = await transition(stack, issuer, consultation.id, "certify")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "certified"
        summary = await _certified_event(summaries, consultation.id)
        commune_events = await _commune_events(per_commune, consultation.id, 3)
    finally:
        await nc.drain()

    assert (summary.code, summary.ballots, summary.commune_count, summary.communes_with_winner) == (
        consultation.code,
        6,
        3,
        2,
    )
    assert all(
        e.consultation_code == consultation.code and e.certified_at == summary.certified_at for _, e in commune_events
    )
    # One event per commune, named by the commune (CloudEvents subject = aggregate id).
    assert [(h["ce-subject"], e.result.commune_id) for h, e in commune_events] == [
        (str(stack.commune_ids[code]), str(stack.commune_ids[code])) for code in (C1, C2, C3)
    ]
    communes = {e.result.commune_code: e.result for _, e in commune_events}
    assert list(communes) == [C1, C2, C3]
    assert [(x.candidate_id, x.votes, x.rank) for x in communes[C1].candidates] == [(b, 2, 1), (a, 1, 2), (c, 1, 3)]
    assert communes[C1].winner_candidate_id == b
    assert communes[C1].ballots == 4
    assert [(x.candidate_id, x.votes, x.rank) for x in communes[C2].candidates] == [(d, 1, 1), (e, 1, 2)]
    assert communes[C2].winner_candidate_id == d
    assert [(x.candidate_id, x.votes, x.rank) for x in communes[C3].candidates] == [(f, 0, 1)]
    assert communes[C3].winner_candidate_id == ""
    assert communes[C3].ballots == 0

    # REST results say the same.
    results = (await client.get(f"/v1/consultations/{consultation.id}/results")).json()
    assert results["ballots"] == 6
    rest = {r["commune_code"]: r for r in results["communes"]}
    assert [(x["candidate_id"], x["votes"], x["rank"]) for x in rest[C2]["candidates"]] == [(d, 1, 1), (e, 1, 2)]
    assert rest[C3]["winner_candidate_id"] is None
    one = (await client.get(f"/v1/consultations/{consultation.id}/communes/{stack.commune_ids[C1]}/results")).json()
    assert one["winner_candidate_id"] == b and one["ballots"] == 4

    # So does gRPC, for services, a page at a time.
    async with grpc_server(CONSULTATIONS, stack.consultations) as target, grpc.aio.insecure_channel(target) as ch:
        stub = consultations_pb2_grpc.ConsultationsServiceStub(ch)  # type: ignore[no-untyped-call]
        service = [
            ("authorization", f"Bearer {issuer.token(roles=['service'], territories=['VE'], client_id='svc-funding')}")
        ]
        whole = await stub.ListCertifiedResults(
            pb.ListCertifiedResultsRequest(consultation_id=consultation.id), metadata=service
        )
        assert whole.summary == summary and whole.next_page_token == ""
        assert list(whole.results) == list(communes.values())
        pages, token = [], ""
        while True:
            page = await stub.ListCertifiedResults(
                pb.ListCertifiedResultsRequest(consultation_id=consultation.id, page_size=2, page_token=token),
                metadata=service,
            )
            assert page.summary == summary
            pages.append([r.commune_code for r in page.results])
            token = page.next_page_token
            if not token:
                break
        assert pages == [[C1, C2], [C3]]
        person = [("authorization", f"Bearer {issuer.token(realm_access={'roles': ['operator']})}")]
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.ListCertifiedResults(
                pb.ListCertifiedResultsRequest(consultation_id=consultation.id), metadata=person
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.ListCertifiedResults(
                pb.ListCertifiedResultsRequest(consultation_id=str(uuid.uuid4())), metadata=service
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_code_of(missing.value) == "consultation_not_found"
        for request, code in [
            (pb.ListCertifiedResultsRequest(consultation_id=consultation.id, page_size=-1), "invalid_page_size"),
            (pb.ListCertifiedResultsRequest(consultation_id=consultation.id, page_token="%%%"), "invalid_page_token"),
            (pb.ListCertifiedResultsRequest(consultation_id=consultation.id, page_token="Zm9v"), "invalid_page_token"),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ListCertifiedResults(request, metadata=service)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error_code_of(refused.value) == code

    # Certified is final.
    again = await transition(stack, issuer, consultation.id, "certify")
    assert again.status_code == 409
    assert again.json()["code"] == "consultation_already_certified"
    assert await rows(stack, "results", consultation.id) == 6


async def _certified_event(sub: Subscription, consultation_id: str) -> events_pb2.ConsultationCertified:
    async with asyncio.timeout(15):
        while True:
            msg = await sub.next_msg(timeout=15)
            assert msg.headers is not None
            assert msg.headers["ce-type"] == "comuna.consultations.v1.ConsultationCertified"
            event = events_pb2.ConsultationCertified.FromString(msg.data)
            if event.consultation_id == consultation_id:
                assert msg.headers["ce-subject"] == consultation_id
                return event


async def _commune_events(
    sub: Subscription, consultation_id: str, n: int
) -> list[tuple[dict[str, str], events_pb2.CommuneResultCertified]]:
    found: list[tuple[dict[str, str], events_pb2.CommuneResultCertified]] = []
    async with asyncio.timeout(15):
        while len(found) < n:
            msg = await sub.next_msg(timeout=15)
            assert msg.headers is not None
            assert msg.headers["ce-type"] == "comuna.consultations.v1.CommuneResultCertified"
            event = events_pb2.CommuneResultCertified.FromString(msg.data)
            if event.consultation_id == consultation_id:
                found.append((dict(msg.headers), event))
    return found


async def test_closed_ballot_count_matches_accepted_ballots_under_a_racing_close(
    stack: Stack, issuer: TestIssuer
) -> None:
    """Ballots racing the close (an amendment, then the clock past it): every 201 is counted,
    and nothing lands once the clock passed the close."""
    voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 60)
    consultation = await voting_consultation(stack, issuer, {C1: 2})
    candidate = consultation.candidates[C1][0]

    first_accepted = asyncio.Event()

    async def ballot(voter: str) -> int:
        status = (await vote(stack, issuer, consultation, C1, candidate, voter)).status_code
        if status == 201:
            first_accepted.set()
        return status

    async def close_midway() -> int:
        # Close while the other ballots are in flight.
        await first_accepted.wait()
        await close_voting(stack, issuer, consultation)
        return 200

    *statuses, close_status = await asyncio.gather(*(ballot(v) for v in voters), close_midway())
    assert close_status == 200
    assert set(statuses) <= {201, 409}
    accepted = statuses.count(201)
    assert accepted >= 1
    assert await rows(stack, "ballots", consultation.id) == accepted
    assert await rows(stack, "participations", consultation.id) == accepted
    late = await vote(stack, issuer, consultation, C1, candidate, voters[-1])
    # Refused by the window before anything else is looked at (voted or not).
    assert (late.status_code, late.json()["code"]) == (409, "consultation_not_in_voting")
    assert await rows(stack, "ballots", consultation.id) == accepted


async def test_grpc_results_before_certification_and_bad_ids(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    service = [
        ("authorization", f"Bearer {issuer.token(roles=['service'], territories=['VE'], client_id='svc-funding')}")
    ]
    async with grpc_server(CONSULTATIONS, stack.consultations) as target, grpc.aio.insecure_channel(target) as ch:
        stub = consultations_pb2_grpc.ConsultationsServiceStub(ch)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as early:
            await stub.ListCertifiedResults(
                pb.ListCertifiedResultsRequest(consultation_id=consultation.id), metadata=service
            )
        assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_code_of(early.value) == "voting_not_closed"
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.ListCertifiedResults(pb.ListCertifiedResultsRequest(consultation_id="nope"), metadata=service)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_code_of(bad.value) == "invalid_id"
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.ListCertifiedResults(pb.ListCertifiedResultsRequest(consultation_id=consultation.id))
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
