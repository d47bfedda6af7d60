"""Full results, per-commune certification, conflict decisions, recounts and the tie-break, against
real PostgreSQL, NATS, Keycloak tokens and identity's role assignments, on a controllable clock.

Conflicts, blank ballots and paper tables are written as rows (what the ballot path, offline
syncs and TABLES store); the votes go through the REST ballot path.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import nats
import pytest
from nats.aio.subscription import Subscription
from sqlalchemy import insert, text

from comuna.consultations.v1 import events_pb2
from comuna_consultations.storage.models import (
    Ballot,
    ParticipationConflict,
    VotingCentre,
    VotingCentreCommune,
    VotingTable,
)
from comuna_devstack.nats import EmbeddedNats
from comuna_platform.auth.roles import Role
from tests.consultations.clock import AFTER_CLOSE, CLOSES_AT, OPENS_AT, clock_at
from tests.consultations.helpers import (
    ADULT,
    Consultation,
    Stack,
    add_candidate,
    open_consultation,
    operator,
    register_residents,
    rows,
    vote,
    voting_consultation,
)
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1, C2, C3 = "VE.01.01.C1", "VE.01.01.C2", "VE.01.02.C3"


def base(consultation: Consultation) -> str:
    return f"/v1/consultations/{consultation.id}"


def commune_path(stack: Stack, consultation: Consultation, commune: str) -> str:
    return f"{base(consultation)}/communes/{stack.commune_ids[commune]}"


async def written(stack: Stack, consultation: Consultation) -> tuple[int, int, int]:
    """Certifications, result rows and conflict decisions stored for the consultation."""
    return (
        await rows(stack, "commune_certifications", consultation.id),
        await rows(stack, "results", consultation.id),
        await rows(stack, "conflict_decisions", consultation.id),
    )


async def insert_rows(stack: Stack, table: Any, values: list[dict[str, Any]]) -> None:
    async with stack.consultations.runtime.db.transaction() as session:
        await session.execute(insert(table), values)


async def roll_size(stack: Stack, consultation: Consultation, commune: str) -> int:
    async with stack.consultations.runtime.db.transaction() as session:
        query = text("SELECT count(*) FROM roll_entries WHERE consultation_id = :id AND commune_id = :commune")
        found = await session.execute(query, {"id": uuid.UUID(consultation.id), "commune": stack.commune_ids[commune]})
        return int(found.scalar_one())


async def auditor(stack: Stack) -> dict[str, str]:
    return await stack.authority.headers(Role.AUDITOR, "VE")


async def next_certified(sub: Subscription, consultation_id: str) -> events_pb2.CommuneResultCertified:
    async with asyncio.timeout(15):
        while True:
            event = events_pb2.CommuneResultCertified.FromString((await sub.next_msg(timeout=15)).data)
            if event.consultation_id == consultation_id:
                return event


async def test_results_certification_conflicts_and_recount(
    stack: Stack, issuer: TestIssuer, embedded_nats: EmbeddedNats
) -> None:
    c1_voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 4)
    c2_voters = await register_residents(stack, issuer, f"{C2}.CC1", ADULT, 2)
    consultation = await voting_consultation(stack, issuer)
    a, b, _c = consultation.candidates[C1]
    d, e = consultation.candidates[C2]
    client = stack.consultations.client

    with clock_at(stack, OPENS_AT + timedelta(hours=1)):
        for voter, choice in zip(c1_voters[:3], [b, b, a], strict=True):
            assert (await vote(stack, issuer, consultation, C1, choice, voter)).status_code == 201
        # C2 ties 1-1: no cost declared, so the earlier registration (d, recorded first) wins.
        for voter, choice in zip(c2_voters, [e, d], strict=True):
            assert (await vote(stack, issuer, consultation, C2, choice, voter)).status_code == 201
    # A blank ballot of C1 (as the ballot path stores it) and a refused second participation in C2.
    await insert_rows(
        stack,
        Ballot.__table__,
        [
            {
                "id": uuid.uuid4(),
                "consultation_id": uuid.UUID(consultation.id),
                "commune_id": stack.commune_ids[C1],
                "candidate_id": None,
                "channel": "online",
            }
        ],
    )
    # C2's conflict has its second ballot in the count (as an offline table's would): with a
    # margin of 0 it gates C2. C3's is a refused attempt whose ballot was never counted: it is
    # reported and gates nothing.
    await insert_rows(
        stack,
        ParticipationConflict.__table__,
        [
            {
                "id": uuid.uuid4(),
                "consultation_id": uuid.UUID(consultation.id),
                "commune_id": stack.commune_ids[C2],
                "voter_ref": "ab" * 32,
                "channel": "online",
                "ballot_counted": True,
            },
            {
                "id": uuid.uuid4(),
                "consultation_id": uuid.UUID(consultation.id),
                "commune_id": stack.commune_ids[C3],
                "voter_ref": "cd" * 32,
                "channel": "online",
                "ballot_counted": False,
            },
        ],
    )

    # Before the close, nothing: no count, no certification, no decision (each 409, nothing written).
    with clock_at(stack, CLOSES_AT - timedelta(seconds=1)):
        for path in (f"{commune_path(stack, consultation, C1)}/results", f"{base(consultation)}/results"):
            early = await client.get(path)
            assert early.status_code == 409, early.text
            assert early.json()["code"] == "voting_not_closed"
            assert "votes" not in early.text and "ballots" not in early.text
        assert (await client.get(f"{commune_path(stack, consultation, C1)}/certifications")).status_code == 409
        one = await client.post(f"{commune_path(stack, consultation, C1)}:certify", headers=operator(issuer))
        assert (one.status_code, one.json()["code"]) == (409, "voting_not_closed")
        every = await client.post(f"{base(consultation)}:certify", headers=operator(issuer))
        assert (every.status_code, every.json()["code"]) == (409, "certification_not_open")
        decision = await client.post(
            f"{commune_path(stack, consultation, C2)}/conflict-decision",
            json={"reason": "revisado"},
            headers=await auditor(stack),
        )
        assert (decision.status_code, decision.json()["code"]) == (409, "voting_not_closed")
    assert await written(stack, consultation) == (0, 0, 0)

    with clock_at(stack, AFTER_CLOSE):
        # After the close, the full result is visible (counted now, not certified yet).
        c1 = (await client.get(f"{commune_path(stack, consultation, C1)}/results")).json()
        assert c1["certification"] is None
        assert [(x["candidate_id"], x["votes"], x["rank"]) for x in c1["candidates"]][:2] == [(b, 2, 1), (a, 1, 2)]
        roll = await roll_size(stack, consultation, C1)
        assert roll >= 4  # everyone registered in C1 so far
        assert (c1["ballots"], c1["blank"], c1["null"], c1["participations"], c1["roll_size"]) == (4, 1, 0, 3, roll)
        assert c1["turnout"] == pytest.approx(3 / roll)
        assert c1["conflicts"] == 0
        channels = {(s["channel"], s["table_id"]): s for s in c1["subtotals"]}
        assert channels[("online", None)]["blank"] == 1
        assert sum(s["votes"].get(b, 0) for s in c1["subtotals"]) == 2

        # Refused, writing nothing: a non-auditor decision, a decision without reason, C2 before its decision.
        for headers, body, status in [
            (operator(issuer), {"reason": "revisado"}, 403),
            (await auditor(stack), {"reason": ""}, 422),
            (await auditor(stack), {}, 422),
        ]:
            refused = await client.post(
                f"{commune_path(stack, consultation, C2)}/conflict-decision", json=body, headers=headers
            )
            assert refused.status_code == status, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
        gated = await client.post(f"{commune_path(stack, consultation, C2)}:certify", headers=operator(issuer))
        assert (gated.status_code, gated.json()["code"]) == (409, "conflict_decision_required")
        assert (gated.json()["conflicts"], gated.json()["counted_conflicts"], gated.json()["margin"]) == (1, 1, 0)
        c3 = (await client.get(f"{commune_path(stack, consultation, C3)}/results")).json()
        assert (c3["conflicts"], c3["counted_conflicts"]) == (1, 0)
        not_operator = await client.post(
            f"{commune_path(stack, consultation, C1)}:certify", headers=await auditor(stack)
        )
        assert not_operator.status_code == 403
        assert await written(stack, consultation) == (0, 0, 0)

        nc = await nats.connect(embedded_nats.url)
        try:
            events = await nc.subscribe("consultations.commune_result.certified")
            # All at once: C1 and C3 certified, C2 blocked by its conflict (and says why).
            run = await client.post(f"{base(consultation)}:certify", headers=operator(issuer))
            assert run.status_code == 200, run.text
            body = run.json()
            assert [c["commune_code"] for c in body["certified_communes"]] == [C1, C3]
            assert [(x["commune_code"], x["code"]) for x in body["blocked_communes"]] == [
                (C2, "conflict_decision_required")
            ]
            assert body["certified_at"] is None
            first = [await next_certified(events, consultation.id) for _ in range(2)]
            assert [(x.result.commune_code, x.result.version, x.result.supersedes_version) for x in first] == [
                (C1, 1, 0),
                (C3, 1, 0),
            ]
            assert [k.candidate_id for k in first[0].result.candidates][:2] == [b, a]
            assert (first[0].result.blank, first[0].result.participations, first[0].result.roll_size) == (1, 3, roll)

            decided = await client.post(
                f"{commune_path(stack, consultation, C2)}/conflict-decision",
                json={"reason": "el doble registro no cambia el resultado: la segunda boleta no se contó"},
                headers=await auditor(stack),
            )
            assert decided.status_code == 201, decided.text
            assert (decided.json()["conflicts"], decided.json()["margin"]) == (1, 0)
            c2 = await client.post(f"{commune_path(stack, consultation, C2)}:certify", headers=operator(issuer))
            assert c2.status_code == 201, c2.text
            assert (c2.json()["winner_candidate_id"], c2.json()["conflicts"]) == (d, 1)
            assert c2.json()["certification"]["tie_break"] == ["lower_cost", "earlier_registration", "draw"]
            assert (await next_certified(events, consultation.id)).result.commune_code == C2
            status = (await client.get(base(consultation))).json()
            assert status["status"] == "certified" and status["certified_at"] is not None

            # A recount needs a reason; then it supersedes version 1, which stays.
            for bad in ({}, {"reason": ""}, {"reason": "   "}):
                refused = await client.post(
                    f"{commune_path(stack, consultation, C1)}:recount", json=bad, headers=operator(issuer)
                )
                assert refused.status_code == 422, refused.text
            assert await written(stack, consultation) == (3, 6, 1)
            again = await client.post(f"{commune_path(stack, consultation, C1)}:certify", headers=operator(issuer))
            assert (again.status_code, again.json()["code"]) == (409, "commune_already_certified")
            # A late ballot found in a recount (e.g. an offline table that synced late).
            await insert_rows(
                stack,
                Ballot.__table__,
                [
                    {
                        "id": uuid.uuid4(),
                        "consultation_id": uuid.UUID(consultation.id),
                        "commune_id": stack.commune_ids[C1],
                        "candidate_id": uuid.UUID(a),
                        "channel": "online",
                    }
                ],
            )
            recount = await client.post(
                f"{commune_path(stack, consultation, C1)}:recount",
                json={"reason": "acta de la mesa 3 recibida tarde"},
                headers=operator(issuer),
            )
            assert recount.status_code == 201, recount.text
            assert recount.json()["certification"]["version"] == 2
            assert recount.json()["certification"]["supersedes"] == 1
            superseding = await next_certified(events, consultation.id)
            assert (superseding.result.version, superseding.result.supersedes_version) == (2, 1)
            assert superseding.result.recount_reason == "acta de la mesa 3 recibida tarde"
            assert superseding.result.ballots == 5
        finally:
            await nc.drain()

        history = (await client.get(f"{commune_path(stack, consultation, C1)}/certifications")).json()
        assert [(h["certification"]["version"], h["ballots"]) for h in history] == [(1, 4), (2, 5)]
        latest = (await client.get(f"{commune_path(stack, consultation, C1)}/results")).json()
        assert latest["certification"]["version"] == 2
        national = (await client.get(f"{base(consultation)}/results")).json()
        assert [(c["commune_code"], c["certification"]["version"]) for c in national["communes"]] == [
            (C1, 2),
            (C2, 1),
            (C3, 1),
        ]
        assert national["ballots"] == 5 + 2 + 0


async def test_paper_tables_without_a_confirmed_sheet_block_their_commune(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    assert (await add_candidate(stack, issuer, consultation, C3, 1)).status_code == 201
    centre_id, table_id = uuid.uuid4(), uuid.uuid4()
    cid = uuid.UUID(consultation.id)
    await insert_rows(
        stack, VotingCentre.__table__, [{"id": centre_id, "consultation_id": cid, "code": "E1", "name": "Escuela"}]
    )
    await insert_rows(
        stack,
        VotingCentreCommune.__table__,
        [{"centre_id": centre_id, "commune_id": stack.commune_ids[C3], "consultation_id": cid}],
    )
    await insert_rows(
        stack,
        VotingTable.__table__,
        [
            {
                "id": table_id,
                "consultation_id": cid,
                "centre_id": centre_id,
                "commune_id": stack.commune_ids[C3],
                "code": "P-07",
                "kind": "paper",
            }
        ],
    )
    client = stack.consultations.client
    with clock_at(stack, AFTER_CLOSE):
        refused = await client.post(f"{commune_path(stack, consultation, C3)}:certify", headers=operator(issuer))
        assert (refused.status_code, refused.json()["code"]) == (409, "tally_sheets_unconfirmed")
        assert "P-07" in refused.json()["detail"]
        assert await written(stack, consultation) == (0, 0, 0)
        run = (await client.post(f"{base(consultation)}:certify", headers=operator(issuer))).json()
        assert [c["commune_code"] for c in run["certified_communes"]] == [C1, C2]
        assert [(x["commune_code"], x["code"]) for x in run["blocked_communes"]] == [(C3, "tally_sheets_unconfirmed")]
        assert await written(stack, consultation) == (2, 0, 0)


async def test_tie_break_is_published_and_final_once_voting_opened(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer)
    client = stack.consultations.client
    shown = (await client.get(f"{base(consultation)}/tie-break")).json()
    assert shown["rules"] == ["lower_cost", "earlier_registration", "draw"]
    assert len(bytes.fromhex(shown["draw_seed"])) == 32
    detail = (await client.get(base(consultation))).json()
    assert (detail["tie_break"], detail["draw_seed"]) == (shown["rules"], shown["draw_seed"])
    other = await open_consultation(stack, issuer)
    assert (await client.get(f"{base(other)}/tie-break")).json()["draw_seed"] != shown["draw_seed"]

    path = f"{base(consultation)}/tie-break"
    with clock_at(stack, OPENS_AT - timedelta(days=1)):
        declared = await client.put(path, json={"rules": ["assembly_priority"]}, headers=operator(issuer))
        assert declared.status_code == 200, declared.text
        assert declared.json()["rules"] == ["assembly_priority", "draw"]
        assert declared.json()["draw_seed"] == shown["draw_seed"]  # the seed never changes
        for bad in (["coin_toss"], ["draw", "draw"]):
            refused = await client.put(path, json={"rules": bad}, headers=operator(issuer))
            assert (refused.status_code, refused.json()["code"]) == (422, "tie_break_invalid")
        spokes = await client.put(path, json={"rules": ["draw"]}, headers=await auditor(stack))
        assert spokes.status_code == 403
    with clock_at(stack, OPENS_AT):
        late = await client.put(path, json={"rules": ["draw"]}, headers=operator(issuer))
        assert (late.status_code, late.json()["code"]) == (409, "tie_break_final")
    assert (await client.get(path)).json()["rules"] == ["assembly_priority", "draw"]
    async with stack.consultations.runtime.db.transaction() as session:
        stored = (
            await session.execute(
                text("SELECT tie_break FROM consultations WHERE id = :id"), {"id": uuid.UUID(consultation.id)}
            )
        ).scalar_one()
    assert stored == ["assembly_priority", "draw"]
