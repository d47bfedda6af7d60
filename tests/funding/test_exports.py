"""Open fund-flow exports through a real funding service: every movement of the allocations in
scope as OCDS transactions (JSON) or CSV rows, filtered by funder, commune and project, with
committed / disbursed / pending / returned totals that equal what the rows add up to; exact
amounts; thousands of rows streamed page by page; unknown filters give empty exports, malformed
ones 422."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from comuna_funding.domain import exports, ledger
from comuna_funding.domain.ledger import AccountSpec, NewTransfer
from comuna_funding.storage import repository
from comuna_funding.vocabulary import AccountKind
from comuna_platform.auth.roles import Role
from comuna_platform.money import major_units, minor_digits
from tests.support.identity import Identity
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

POSTED = {"single", "post"}


@dataclass(frozen=True)
class Funded:
    """One allocation: its commitment account holds what the funder's source sent it."""

    id: str
    funder: str
    commune_id: str
    account_id: str
    source_id: str
    commune_account_id: str


async def allocate(funding: RunningService, funder: str, commune_id: uuid.UUID, amount: int) -> Funded:
    """An allocation as the co-funding use cases leave one: the funder's source, the project's
    commitment account funded from it, the allocation row; and the commune's account."""
    allocation_id = uuid.uuid4()
    source = AccountSpec(key=f"source:{funder}:USD", currency="USD", kind=AccountKind.SOURCE)
    commitment = AccountSpec(
        key=f"commitment:{allocation_id}",
        currency="USD",
        kind=AccountKind.COMMITMENT,
        debits_must_not_exceed_credits=True,
    )
    commune = AccountSpec(key=f"commune:{commune_id}:USD", currency="USD", kind=AccountKind.COMMUNE)
    transfer_id = uuid.uuid4()
    async with funding.runtime.db.transaction() as session:
        accounts = await ledger.ensure_accounts(session, [source, commitment, commune])
        await ledger.create_transfers(
            session,
            [
                NewTransfer(
                    id=transfer_id,
                    debit_account_id=source.id,
                    credit_account_id=commitment.id,
                    amount=amount,
                    currency="USD",
                    code="grant_allocation",
                    reference=f"allocation {allocation_id}",
                )
            ],
        )
        await repository.insert_allocations_if_absent(
            session,
            [
                {
                    "id": allocation_id,
                    "consultation_id": uuid.uuid4(),
                    "commune_id": commune_id,
                    "commune_code": f"VE.01.01.{commune_id.hex[:4]}",
                    "candidate_id": uuid.uuid4(),
                    "title": "Proyecto",
                    "amount_minor": amount,
                    "currency": "USD",
                    "funding_source": funder,
                    "account_id": commitment.id,
                    "transfer_id": transfer_id,
                }
            ],
        )
    return Funded(
        str(allocation_id),
        funder,
        str(commune_id),
        str(accounts[commitment.key].id),
        str(accounts[source.key].id),
        str(accounts[commune.key].id),
    )


@pytest_asyncio.fixture(scope="module")
async def operator(identity: Identity) -> dict[str, str]:
    return await identity.headers(Role.OPERATOR, "VE")


async def send(funding: RunningService, operator: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("id", str(uuid.uuid4()))
    body.setdefault("code", "tranche")
    if body.get("kind") not in ("post", "void"):
        body.setdefault("currency", "USD")
    response = await funding.client.post("/v1/transfers", json=body, headers=operator)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def movements(funding: RunningService, operator: dict[str, str], a: Funded) -> None:
    """A tranche paid at once (1,000), one reserved and open (500), one reserved and posted in
    part (700 -> 600), one reserved and voided (200), 300 returned to the funder, and 50 moved to
    another commitment (counted in no total)."""
    out = {"debit_account_id": a.account_id, "credit_account_id": a.commune_account_id}
    await send(funding, operator, **out, amount_minor=1_000, reference="milestone 1")
    await send(funding, operator, **out, kind="pending", amount_minor=500, reference="milestone 2")
    posted = await send(funding, operator, **out, kind="pending", amount_minor=700, reference="milestone 3")
    await send(funding, operator, kind="post", pending_id=posted["id"], amount_minor=600)
    voided = await send(funding, operator, **out, kind="pending", amount_minor=200, reference="milestone 4")
    await send(funding, operator, kind="void", pending_id=voided["id"])
    back = {"debit_account_id": a.account_id, "credit_account_id": a.source_id}
    await send(funding, operator, **back, amount_minor=300, code="commitment_released")


@dataclass(frozen=True)
class World:
    a1: Funded  # funder A, commune 1
    a2: Funded  # funder A, commune 2
    b1: Funded  # funder B, commune 1


@pytest_asyncio.fixture(scope="module")
async def world(funding: RunningService, operator: dict[str, str]) -> World:
    funder_a, funder_b = f"fa_{uuid.uuid4().hex[:8]}", f"fb_{uuid.uuid4().hex[:8]}"
    commune_1, commune_2 = uuid.uuid4(), uuid.uuid4()
    a1 = await allocate(funding, funder_a, commune_1, 10_000)
    a2 = await allocate(funding, funder_a, commune_2, 20_000)
    b1 = await allocate(funding, funder_b, commune_1, 5_555)
    for allocation in (a1, a2, b1):
        await movements(funding, operator, allocation)
    # Between two commitments in scope: one row, in no total.
    await send(funding, operator, debit_account_id=a1.account_id, credit_account_id=b1.account_id, amount_minor=50)
    return World(a1, a2, b1)


async def export(funding: RunningService, status: int = 200, **params: str) -> Any:
    response = await funding.client.get("/v1/exports/transactions", params=params)
    assert response.status_code == status, response.text
    if status != 200:
        return response.json()
    assert response.headers["cache-control"] == "public, max-age=60"
    if params.get("format") == "csv":
        assert response.headers["content-type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(response.text)))
    assert response.headers["content-type"].startswith("application/json")
    return json.loads(response.text, parse_float=Decimal)


def expected_totals(transactions: list[dict[str, Any]], scope_accounts: set[str]) -> list[dict[str, Any]]:
    """The totals' definitions (docs/ledger.md, "Open data"), recomputed from the rows."""
    resolved = {t["pending_id"] for t in transactions if t["pending_id"]}
    sums: dict[str, dict[str, int]] = {}

    def kind(name: str) -> str:
        return name.split(":", 1)[0]

    for t in transactions:
        amount, currency = t["value"]["amount_minor"], t["value"]["currency"]
        payer, payee = t["payer"], t["payee"]
        leaves, enters = payer["id"] in scope_accounts, payee["id"] in scope_accounts
        bucket = sums.setdefault(currency, dict.fromkeys(("committed", "disbursed", "pending", "returned"), 0))
        if t["kind"] in POSTED and enters and kind(payer["name"]) in ("source", "clearing"):
            bucket["committed"] += amount
        if t["kind"] in POSTED and leaves and kind(payee["name"]) in ("commune", "project"):
            bucket["disbursed"] += amount
        if t["kind"] == "pending" and t["id"] not in resolved and leaves and kind(payee["name"]) in ("commune",):
            bucket["pending"] += amount
        if t["kind"] in POSTED and leaves and kind(payee["name"]) in ("source", "clearing"):
            bucket["returned"] += amount
    return [{"currency": c, **{k: money(v, c) for k, v in sorted(sums[c].items())}} for c in sorted(sums)]


def money(amount_minor: int, currency: str) -> dict[str, Any]:
    return {"amount": Decimal(amount_minor) / 100, "amount_minor": amount_minor, "currency": currency}


def accounts(*allocations: Funded) -> set[str]:
    return {a.account_id for a in allocations}


def ids(document: Iterable[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in document]


# --- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1234, "USD", "12.34"),
        (5, "VES", "0.05"),
        (100, "USD", "1.00"),
        (5, "JPY", "5"),
        (1_234_567, "BHD", "1234.567"),
        (2**63 - 1, "USD", "92233720368547758.07"),
        (-250, "USD", "-2.50"),
    ],
)
async def test_major_units_are_written_from_the_integer(amount: int, currency: str, text: str) -> None:
    assert major_units(amount, currency) == text
    assert Decimal(text) * 10 ** minor_digits(currency) == amount


# --- the service -----------------------------------------------------------------------------


async def test_one_project_every_movement_and_its_totals(funding: RunningService, world: World) -> None:
    a1 = world.a1
    document = await export(funding, allocation_id=a1.id)

    assert document["filters"] == {"funder": None, "commune_id": None, "allocation_id": a1.id}
    rows = document["transactions"]
    kinds = ["single", "single", "pending", "pending", "post", "pending", "void", "single", "single"]
    assert [r["kind"] for r in rows] == kinds
    assert {r["allocation_id"] for r in rows} == {a1.id} and {r["funder"] for r in rows} == {a1.funder}
    assert {r["commune_id"] for r in rows} == {a1.commune_id}
    first = rows[0]
    assert set(first) >= {"id", "source", "date", "value", "payer", "payee", "kind", "code", "reference"}
    assert first["source"] == exports.source_uri() and first["date"].endswith("Z")
    assert first["value"] == money(10_000, "USD")
    assert first["payer"] == {"id": a1.source_id, "name": f"source:{a1.funder}:USD"}
    assert first["payee"] == {"id": a1.account_id, "name": f"commitment:{a1.id}"}
    assert document["totals"] == [
        {
            "currency": "USD",
            "committed": money(10_000, "USD"),
            "disbursed": money(1_600, "USD"),
            "pending": money(500, "USD"),
            "returned": money(300, "USD"),
        }
    ]
    assert document["totals"] == expected_totals(rows, accounts(a1))


async def test_filters_by_funder_commune_and_project(funding: RunningService, world: World) -> None:
    a1, a2, b1 = world.a1, world.a2, world.b1
    cases = [
        ({"funder": a1.funder}, accounts(a1, a2)),
        ({"commune_id": a1.commune_id}, accounts(a1, b1)),
        ({"funder": a1.funder, "commune_id": a1.commune_id}, accounts(a1)),
        ({"funder": b1.funder, "allocation_id": a1.id}, set()),
        ({"allocation_id": a2.id}, accounts(a2)),
    ]
    for params, scope in cases:
        document = await export(funding, **params)
        rows = document["transactions"]
        assert {r["allocation_id"] for r in rows} == {a.id for a in (a1, a2, b1) if a.account_id in scope}, params
        assert all(r["payer"]["id"] in scope or r["payee"]["id"] in scope for r in rows), params
        assert document["totals"] == expected_totals(rows, scope), params
        totals = await funding.client.get("/v1/exports/totals", params=params)
        assert totals.status_code == 200 and totals.headers["cache-control"] == "public, max-age=60"
        assert json.loads(totals.text, parse_float=Decimal)["totals"] == document["totals"], params
    # The 50 between two commitments is one row in a1's and b1's exports, counted in neither.
    crossing = [
        r for r in (await export(funding, commune_id=a1.commune_id))["transactions"] if r["value"]["amount_minor"] == 50
    ]
    assert len(crossing) == 1 and crossing[0]["allocation_id"] == a1.id
    assert [r["allocation_id"] for r in (await export(funding, allocation_id=b1.id))["transactions"]].count(b1.id) == 9


async def test_everything_unfiltered_adds_up(funding: RunningService, world: World) -> None:
    document = await export(funding)
    async with funding.runtime.db.transaction() as session:
        scope = {str(i) for i in (await session.execute(text("SELECT account_id FROM allocations"))).scalars()}
    rows = document["transactions"]
    assert set(ids((await export(funding, funder=world.a1.funder))["transactions"])) <= set(ids(rows))
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)
    assert document["totals"] == expected_totals(rows, scope)


async def test_json_and_csv_say_the_same(funding: RunningService, world: World) -> None:
    params = {"commune_id": world.a1.commune_id}
    document = await export(funding, **params)
    rows = await export(funding, **params, format="csv")
    assert list(rows[0]) == list(exports.CSV_COLUMNS)
    assert ids(rows) == ids(document["transactions"])
    for line, item in zip(rows, document["transactions"], strict=True):
        assert Decimal(line["amount"]) == item["value"]["amount"]
        assert int(line["amount_minor"]) == item["value"]["amount_minor"]
        assert (line["currency"], line["date"], line["source"]) == (
            item["value"]["currency"],
            item["date"],
            item["source"],
        )
        assert (line["payer_id"], line["payer_name"], line["payee_id"], line["payee_name"]) == (
            item["payer"]["id"],
            item["payer"]["name"],
            item["payee"]["id"],
            item["payee"]["name"],
        )
        for name in ("kind", "code", "reference", "allocation_id", "funder", "commune_id"):
            assert line[name] == item[name], name
        assert line["pending_id"] == (item["pending_id"] or "")


async def test_unknown_filters_are_empty_and_malformed_ones_refused(funding: RunningService, world: World) -> None:
    for params in (
        {"funder": "nobody_at_all"},
        {"commune_id": str(uuid.uuid4())},
        {"allocation_id": str(uuid.uuid4())},
    ):
        assert await export(funding, **params) == {
            "filters": {"funder": None, "commune_id": None, "allocation_id": None, **params},
            "totals": [],
            "transactions": [],
        }
        assert await export(funding, **params, format="csv") == []
    for params, code in (
        ({"funder": "Bad-Name"}, "funder_invalid"),
        ({"funder": "x" * 40}, "validation_error"),
        ({"commune_id": "not-a-uuid"}, "validation_error"),
        ({"allocation_id": "42"}, "validation_error"),
        ({"format": "xml"}, "validation_error"),
    ):
        problem = await export(funding, 422, **params)
        assert problem["code"] == code, (params, problem)
        totals = await funding.client.get("/v1/exports/totals", params=params)
        assert totals.status_code == (200 if "format" in params else 422), params


async def test_thousands_of_rows_stream_page_by_page(funding: RunningService) -> None:
    count = 3 * exports.PAGE + 17
    big = await allocate(funding, f"fs_{uuid.uuid4().hex[:8]}", uuid.uuid4(), 10**12)
    tranches = [
        NewTransfer(
            id=uuid.uuid4(),
            debit_account_id=uuid.UUID(big.account_id),
            credit_account_id=uuid.UUID(big.commune_account_id),
            amount=i + 1,
            currency="USD",
            code="tranche",
            reference=f"t{i}",
        )
        for i in range(count)
    ]
    async with funding.runtime.db.transaction() as session:
        await ledger.create_transfers(session, tranches)

    document = await export(funding, allocation_id=big.id)
    rows = document["transactions"]
    assert len(rows) == count + 1
    assert ids(rows[1:]) == [str(t.id) for t in tranches]
    assert document["totals"][0]["disbursed"]["amount_minor"] == count * (count + 1) // 2
    assert len(await export(funding, allocation_id=big.id, format="csv")) == count + 1

    # The document is produced a page at a time, from one snapshot.
    async with funding.runtime.db.transaction() as session:
        chunks = [
            chunk async for chunk in exports.json_document(session, exports.scope_of(allocation_id=uuid.UUID(big.id)))
        ]
    assert len(chunks) == 2 + (count + 1 + exports.PAGE - 1) // exports.PAGE
    assert ids(json.loads("".join(chunks))["transactions"]) == ids(rows)


async def test_a_busy_replica_says_when_to_come_back(funding: RunningService, world: World) -> None:
    saved = getattr(funding.app.state, "download_slots", None)
    funding.app.state.download_slots = asyncio.Semaphore(0)
    try:
        response = await funding.client.get("/v1/exports/transactions")
    finally:
        funding.app.state.download_slots = saved
    assert response.status_code == 503 and response.json()["code"] == "exports_busy"
    assert response.headers["retry-after"] == "5"
    assert (await funding.client.get("/v1/exports/totals")).status_code == 200
