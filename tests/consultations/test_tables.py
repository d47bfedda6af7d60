"""Voting centres and tables (import, additions, reads), officers per table, electronic check-in."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.auth.roles import Role
from tests.consultations.conftest import open_stack
from tests.consultations.helpers import Stack, open_consultation, operator, spokesperson, vote
from tests.consultations.tables_support import (
    C1,
    C2,
    C3,
    LAYOUT,
    Laid,
    clock_of,
    count,
    csv_body,
    import_layout,
    laid_out_consultation,
    officer_of,
)
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

CHECK_IN_BURST = 6


@pytest_asyncio.fixture(scope="module")
async def stack(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Stack]:
    # A small burst and (practically) no refill, so the limit test reaches it in a few calls.
    async with open_stack(
        embedded_postgres,
        embedded_nats,
        issuer,
        uuid.uuid4().hex[:10],
        rate_limit_table_check_ins_burst=CHECK_IN_BURST,
        rate_limit_table_check_ins_per_minute=0.001,
    ) as stack:
        yield stack


def _json_rows(lines: list[str]) -> list[dict[str, str]]:
    names = ["centre_code", "centre_name", "address", "commune_code", "table_code", "table_kind"]
    return [dict(zip(names, line.split(","), strict=True)) for line in lines]


async def test_csv_import_lays_out_centres_and_tables_and_a_reimport_changes_nothing(
    stack: Stack, issuer: TestIssuer
) -> None:
    clock_of(stack)
    consultation = await open_consultation(stack, issuer)
    response = await import_layout(stack, consultation.id, csv_body(LAYOUT), operator(issuer))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "centres_created": 2,
        "tables_created": 5,
        "communes_added": 3,
        "unchanged": 0,
        "total": 5,
        "changes": True,
    }
    client = stack.consultations.client
    centres = (await client.get(f"/v1/consultations/{consultation.id}/voting-centres")).json()
    assert centres["items"] == [
        {"code": "CV1", "name": "Escuela Bolivariana", "address": "Calle 1", "commune_codes": [C1, C2]},
        {"code": "CV2", "name": "Casa Comunal", "address": "", "commune_codes": [C2]},
    ]
    first = (await client.get(f"/v1/consultations/{consultation.id}/tables", params={"limit": 3})).json()
    assert [t["code"] for t in first["items"]] == ["E1", "E2", "O1"]
    assert first["next_page_token"]
    rest = (
        await client.get(
            f"/v1/consultations/{consultation.id}/tables", params={"limit": 3, "page_token": first["next_page_token"]}
        )
    ).json()
    assert [t["code"] for t in rest["items"]] == ["P1", "P2"]
    assert rest["next_page_token"] is None
    p2 = (await client.get(f"/v1/consultations/{consultation.id}/tables/P2")).json()
    assert p2 == {
        "code": "P2",
        "kind": "paper",
        "centre_code": "CV1",
        "commune_id": str(stack.commune_ids[C2]),
        "commune_code": C2,
    }

    again = await import_layout(stack, consultation.id, csv_body(LAYOUT), operator(issuer))
    assert again.status_code == 200, again.text
    assert again.json() == {
        "centres_created": 0,
        "tables_created": 0,
        "communes_added": 0,
        "unchanged": 5,
        "total": 5,
        "changes": False,
    }
    assert await count(stack, "voting_tables", consultation.id) == 5
    assert await count(stack, "voting_centres", consultation.id) == 2
    assert await count(stack, "voting_centre_communes", consultation.id) == 3


async def test_json_import_is_the_same_rows(stack: Stack, issuer: TestIssuer) -> None:
    clock_of(stack)
    consultation = await open_consultation(stack, issuer)
    response = await import_layout(stack, consultation.id, _json_rows(LAYOUT[:2]), operator(issuer))
    assert response.status_code == 200, response.text
    assert response.json()["tables_created"] == 2
    # The same tables by CSV afterwards: nothing new, the rest added.
    response = await import_layout(stack, consultation.id, csv_body(LAYOUT), operator(issuer))
    assert response.json()["tables_created"] == 3
    assert response.json()["unchanged"] == 2


async def test_bad_rows_are_refused_by_line_number_and_nothing_is_written(stack: Stack, issuer: TestIssuer) -> None:
    clock_of(stack)
    consultation = await open_consultation(stack, issuer)
    lines = [
        f"CV1,Escuela,,{C1},E1,electronic",  # line 2: fine
        "CV1,Escuela,,VE.99.XX,E2,electronic",  # line 3: not a commune of this consultation
        f"CV1,Escuela,,{C2},E1,electronic",  # line 4: E1 is C1's table on line 2
        f"CV1,Escuela,,{C1},E3,drive-through",  # line 5: no such kind
        f"CV2,Liceo,,{C1},,paper",  # line 6: no table code
    ]
    response = await import_layout(stack, consultation.id, csv_body(lines), operator(issuer))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "import_invalid"
    assert [(e["line"], e["code"]) for e in problem["errors"]] == [
        (3, "commune_unknown"),
        (4, "table_code_reused"),
        (5, "table_kind_unknown"),
        (6, "field_missing"),
    ]
    for table in ("voting_centres", "voting_centre_communes", "voting_tables"):
        assert await count(stack, table, consultation.id) == 0, table

    # The same in JSON: the line is the item's position.
    response = await import_layout(stack, consultation.id, _json_rows(lines[:3]), operator(issuer))
    assert [(e["line"], e["code"]) for e in response.json()["errors"]] == [
        (2, "commune_unknown"),
        (3, "table_code_reused"),
    ]

    # A table code stored for one commune cannot come back for another, nor a centre renamed.
    assert (await import_layout(stack, consultation.id, csv_body(lines[:1]), operator(issuer))).status_code == 200
    reused = await import_layout(
        stack,
        consultation.id,
        csv_body([f"CV1,Escuela,,{C1},P9,paper", f"CV3,Otra,,{C2},E1,electronic"]),
        operator(issuer),
    )
    assert reused.status_code == 422
    assert [(e["line"], e["code"]) for e in reused.json()["errors"]] == [(3, "table_code_reused")]
    renamed = await import_layout(
        stack, consultation.id, csv_body([f"CV1,Escuela Nueva,,{C1},P9,paper"]), operator(issuer)
    )
    assert [(e["line"], e["code"]) for e in renamed.json()["errors"]] == [(2, "centre_differs")]
    assert await count(stack, "voting_tables", consultation.id) == 1


async def test_single_additions_and_who_may_lay_out_tables(stack: Stack, issuer: TestIssuer) -> None:
    clock_of(stack)
    consultation = await open_consultation(stack, issuer)
    client = stack.consultations.client
    table = {
        "centre_code": "CV1",
        "centre_name": "Escuela",
        "commune_code": C1,
        "table_code": "E1",
        "table_kind": "electronic",
    }
    url = f"/v1/consultations/{consultation.id}/tables"
    # The municipal official of C1's municipality may; the one of another municipality may not.
    iribarren = await stack.authority.headers(Role.MUNICIPAL_OFFICIAL, "VE.01.01")
    palavecino = await stack.authority.headers(Role.MUNICIPAL_OFFICIAL, "VE.01.02")
    refused = await client.post(url, json=table, headers=palavecino)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_territory")
    refused = await client.post(url, json=table, headers=spokesperson(issuer, C1))
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_role")
    assert await count(stack, "voting_tables", consultation.id) == 0
    created = await client.post(url, json=table, headers=iribarren)
    assert created.status_code == 201, created.text
    assert created.json()["tables_created"] == 1
    again = await client.post(url, json=table, headers=iribarren)
    assert (again.status_code, again.json()["code"]) == (409, "already_exists")
    other_commune = await client.post(url, json={**table, "commune_code": C2}, headers=operator(issuer))
    assert (other_commune.status_code, other_commune.json()["code"]) == (409, "table_code_reused")
    state = await stack.authority.headers(Role.REGIONAL_OFFICIAL, "VE.01")
    centre = await client.post(
        f"/v1/consultations/{consultation.id}/voting-centres",
        json={"code": "CV9", "name": "Liceo", "commune_codes": [C2, C3]},
        headers=state,
    )
    assert centre.status_code == 201, centre.text
    assert centre.json()["centres_created"] == 1
    assert centre.json()["communes_added"] == 2


async def test_centres_and_tables_only_before_voting_opens(stack: Stack, issuer: TestIssuer) -> None:
    clock = clock_of(stack)
    consultation = await open_consultation(stack, issuer)
    state = (await stack.consultations.client.get(f"/v1/consultations/{consultation.id}")).json()
    clock.set(datetime.fromisoformat(state["voting_opens_at"]))
    response = await import_layout(stack, consultation.id, csv_body(LAYOUT), operator(issuer))
    assert (response.status_code, response.json()["code"]) == (409, "voting_already_open")
    clock.set(datetime.fromisoformat(state["voting_opens_at"]) - timedelta(seconds=1))
    assert (await import_layout(stack, consultation.id, csv_body(LAYOUT), operator(issuer))).status_code == 200


async def _check_in(
    stack: Stack, laid: Laid, table: str, document: str, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    response = await stack.consultations.client.post(
        f"/v1/consultations/{laid.id}/tables/{table}:check-in", json={"national_id": document}, headers=headers
    )
    return response.status_code, response.json()


async def test_check_in_answers_only_yes_or_no(
    stack: Stack, issuer: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    laid = await laid_out_consultation(stack, issuer)
    e1 = await officer_of(stack, laid.id, C1, "E1")
    caplog.set_level(logging.DEBUG)
    assert await _check_in(stack, laid, "E1", laid.voters.c1[0], e1) == (200, {"may_vote": True})
    # Not registered, under age, another commune's voter: one and the same answer.
    for document in (laid.voters.unregistered, laid.voters.child, laid.voters.c2[0]):
        assert await _check_in(stack, laid, "E1", document, e1) == (200, {"may_vote": False}), document
    # Having voted (here through the ballot endpoint) is that same answer too.
    voted = laid.voters.c1[1]
    assert (
        await vote(stack, issuer, laid.consultation, C1, laid.consultation.candidates[C1][0], voted)
    ).status_code == 201
    assert await _check_in(stack, laid, "E1", voted, e1) == (200, {"may_vote": False})
    # The document is in no log line.
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for document in (laid.voters.c1[0], laid.voters.c2[0], laid.voters.child, voted):
        assert document not in logged
    # A check-in writes nothing.
    assert await count(stack, "participations", laid.id) == 1


async def test_an_officer_acts_only_at_their_own_table(stack: Stack, issuer: TestIssuer) -> None:
    laid = await laid_out_consultation(stack, issuer)
    document = laid.voters.c1[0]
    p1 = await officer_of(stack, laid.id, C1, "P1")  # same commune, another table
    status, problem = await _check_in(stack, laid, "E1", document, p1)
    assert (status, problem["code"]) == (403, "forbidden_table")
    other = await laid_out_consultation(stack, issuer)
    e1_elsewhere = await officer_of(stack, other.id, C1, "E1")  # the same code, another consultation
    status, problem = await _check_in(stack, laid, "E1", document, e1_elsewhere)
    assert (status, problem["code"]) == (403, "forbidden_table")
    status, problem = await _check_in(stack, laid, "E1", document, spokesperson(issuer, C1))
    assert (status, problem["code"]) == (403, "forbidden_role")
    status, problem = await _check_in(stack, laid, "NOPE", document, p1)
    assert (status, problem["code"]) == (404, "table_not_found")
    # A paper table has no electronic check-in.
    status, problem = await _check_in(stack, laid, "P1", document, p1)
    assert (status, problem["code"]) == (409, "wrong_table_kind")


async def test_check_in_only_while_the_commune_votes(stack: Stack, issuer: TestIssuer) -> None:
    laid = await laid_out_consultation(stack, issuer)
    e1 = await officer_of(stack, laid.id, C1, "E1")
    clock = clock_of(stack)
    clock.set(laid.opens_at - timedelta(seconds=1))
    status, problem = await _check_in(stack, laid, "E1", laid.voters.c1[0], e1)
    assert (status, problem["code"]) == (409, "voting_not_open")
    clock.set(laid.closes_at)
    status, problem = await _check_in(stack, laid, "E1", laid.voters.c1[0], e1)
    assert (status, problem["code"]) == (409, "voting_not_open")


async def test_check_ins_are_rate_limited_per_officer(stack: Stack, issuer: TestIssuer) -> None:
    laid = await laid_out_consultation(stack, issuer)
    e1 = await officer_of(stack, laid.id, C1, "E1")
    for _ in range(CHECK_IN_BURST):
        assert (await _check_in(stack, laid, "E1", laid.voters.unregistered, e1))[0] == 200
    response = await stack.consultations.client.post(
        f"/v1/consultations/{laid.id}/tables/E1:check-in", json={"national_id": laid.voters.c1[0]}, headers=e1
    )
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    # Another officer of the same table has a bucket of their own.
    second = await officer_of(stack, laid.id, C1, "E1", n=2)
    assert await _check_in(stack, laid, "E1", laid.voters.c1[0], second) == (200, {"may_vote": True})
