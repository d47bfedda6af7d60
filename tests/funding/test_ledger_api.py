"""The ledger's REST writes and its public journal, through a real funding service: accounts,
single and two-phase transfers, linked chains, exchanges, idempotent retries, refusals that
write nothing, and a journal whose entries add up to the published balances."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from comuna_funding.domain import journal as entries
from comuna_funding.domain import ledger
from comuna_funding.storage import journal
from comuna_platform.auth.roles import Role
from tests.support.identity import Identity
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(scope="module")
async def operator(identity: Identity) -> dict[str, str]:
    return await identity.headers(Role.OPERATOR, "VE")


async def open_account(
    funding: RunningService, operator: dict[str, str], kind: str = "commune", currency: str = "USD", **flags: bool
) -> dict[str, Any]:
    body = {"key": f"{kind}:{uuid.uuid4()}:{currency}", "currency": currency, "kind": kind, "flags": flags}
    response = await funding.client.post("/v1/accounts", json=body, headers=operator)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def send(funding: RunningService, operator: dict[str, str], **body: Any) -> Any:
    body.setdefault("id", str(uuid.uuid4()))
    body.setdefault("code", "test_move")
    return await funding.client.post("/v1/transfers", json=body, headers=operator)


async def account(funding: RunningService, account_id: str) -> dict[str, Any]:
    response = await funding.client.get(f"/v1/accounts/{account_id}")
    assert response.status_code == 200
    return dict(response.json())


async def funded(funding: RunningService, operator: dict[str, str], amount: int) -> tuple[dict, dict]:
    """A source and a commitment holding `amount` (the commitment may not overdraw)."""
    source = await open_account(funding, operator, "source")
    commitment = await open_account(funding, operator, "commitment", debits_must_not_exceed_credits=True)
    response = await send(
        funding,
        operator,
        debit_account_id=source["id"],
        credit_account_id=commitment["id"],
        amount_minor=amount,
        currency="USD",
    )
    assert response.status_code == 201, response.text
    return source, commitment


async def test_a_single_transfer_posts_and_a_resend_returns_it(funding: RunningService, operator: dict) -> None:
    source, commitment = await funded(funding, operator, 1_000)
    commune = await open_account(funding, operator)
    body = {
        "id": str(uuid.uuid4()),
        "debit_account_id": commitment["id"],
        "credit_account_id": commune["id"],
        "amount_minor": 400,
        "currency": "USD",
        "code": "tranche",
        "reference": "milestone 1",
    }
    first = await send(funding, operator, **body)
    assert first.status_code == 201
    again = await send(funding, operator, **body)
    assert again.status_code == 200 and again.json() == first.json()
    reused = await send(funding, operator, **{**body, "amount_minor": 401})
    assert reused.status_code == 409 and reused.json()["code"] == "transfer_id_reused"
    assert (await account(funding, commitment["id"]))["debits_posted_minor"] == 400
    assert (await account(funding, commune["id"]))["credits_posted_minor"] == 400
    assert source["kind"] == "source"


async def test_two_phase_reserves_then_posts_or_voids_once(funding: RunningService, operator: dict) -> None:
    _, commitment = await funded(funding, operator, 1_000)
    commune = await open_account(funding, operator)
    reserve = await send(
        funding,
        operator,
        kind="pending",
        debit_account_id=commitment["id"],
        credit_account_id=commune["id"],
        amount_minor=700,
        currency="USD",
    )
    assert reserve.status_code == 201, reserve.text
    pending_id = reserve.json()["id"]
    held = await account(funding, commitment["id"])
    assert (held["debits_pending_minor"], held["debits_posted_minor"]) == (700, 0)
    # The reservation counts against the limit: only 300 are left to move.
    over = await send(
        funding,
        operator,
        debit_account_id=commitment["id"],
        credit_account_id=commune["id"],
        amount_minor=301,
        currency="USD",
    )
    assert over.status_code == 409 and over.json()["code"] == "exceeds_credits"
    too_much = await send(funding, operator, kind="post", pending_id=pending_id, amount_minor=701)
    assert too_much.status_code == 409 and too_much.json()["code"] == "exceeds_pending_transfer_amount"
    post = await send(funding, operator, kind="post", pending_id=pending_id, amount_minor=500)
    assert post.status_code == 201, post.text
    assert post.json()["value"]["amount_minor"] == 500 and post.json()["payee"]["id"] == commune["id"]
    for kind in ("post", "void"):
        second = await send(funding, operator, kind=kind, pending_id=pending_id)
        assert second.status_code == 409 and second.json()["code"] == "pending_transfer_already_resolved"
    after = await account(funding, commitment["id"])
    assert (after["debits_pending_minor"], after["debits_posted_minor"]) == (0, 500)


async def test_concurrent_resolutions_of_one_pending_transfer_win_once(funding: RunningService, operator: dict) -> None:
    _, commitment = await funded(funding, operator, 1_000)
    commune = await open_account(funding, operator)
    reserve = await send(
        funding,
        operator,
        kind="pending",
        debit_account_id=commitment["id"],
        credit_account_id=commune["id"],
        amount_minor=1_000,
        currency="USD",
    )
    pending_id = reserve.json()["id"]
    answers = await asyncio.gather(
        *(send(funding, operator, kind=("post" if i % 2 else "void"), pending_id=pending_id) for i in range(10))
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9
    after = await account(funding, commitment["id"])
    assert after["debits_pending_minor"] == 0 and after["debits_posted_minor"] in (0, 1_000)


async def test_concurrent_single_transfers_share_transactions_and_are_decided_one_by_one(
    funding: RunningService, operator: dict
) -> None:
    """Group commit: 30 concurrent requests against a commitment holding 20 of them. Exactly 20
    are stored (no overdraft), in fewer transactions than transfers; a resend that meets its
    original is stored once; a reused id with another body is refused; the journal still adds up."""
    _, commitment = await funded(funding, operator, 1_000)
    commune = await open_account(funding, operator)
    move = {"debit_account_id": commitment["id"], "credit_account_id": commune["id"], "currency": "USD"}
    bodies = [{"id": str(uuid.uuid4()), "amount_minor": 50, **move} for _ in range(30)]
    resent, reused = dict(bodies[0]), {**bodies[1], "amount_minor": 51}
    answers = await asyncio.gather(*(send(funding, operator, **body) for body in [*bodies, resent, reused]))
    statuses = [a.status_code for a in answers]
    created = [b["id"] for b, a in zip(bodies, answers, strict=False) if a.status_code == 201]
    refused = [a.json()["code"] for a in answers[:30] if a.status_code != 201]
    assert len(created) == 20 and refused == ["exceeds_credits"] * 10, statuses
    assert statuses[30] == (200 if bodies[0]["id"] in created else 409)
    assert statuses[31] == 409 and answers[31].json()["code"] in ("transfer_id_reused", "exceeds_credits")
    after = await account(funding, commitment["id"])
    assert after["debits_posted_minor"] == after["credits_posted_minor"] == 1_000
    async with funding.runtime.db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, xmin::text AS tx FROM transfers WHERE id = ANY(:ids)"),
            {"ids": [uuid.UUID(i) for i in created]},
        )
        transactions = {row.tx for row in rows}
    assert 1 <= len(transactions) < len(created)
    async with funding.runtime.db.transaction() as session:
        assert await ledger.audit(session) == []


async def test_a_pending_transfer_expires_after_its_timeout(funding: RunningService, operator: dict) -> None:
    _, commitment = await funded(funding, operator, 1_000)
    commune = await open_account(funding, operator)
    reserve = await send(
        funding,
        operator,
        kind="pending",
        debit_account_id=commitment["id"],
        credit_account_id=commune["id"],
        amount_minor=600,
        currency="USD",
        timeout_seconds=1,
    )
    pending_id = reserve.json()["id"]
    # The expiry worker runs every second; poll its effect rather than sleeping a guess.
    for _ in range(100):
        held = await account(funding, commitment["id"])
        if held["debits_pending_minor"] == 0:
            break
        await asyncio.sleep(0.1)
    assert held["debits_pending_minor"] == 0 and held["debits_posted_minor"] == 0
    late = await send(funding, operator, kind="post", pending_id=pending_id)
    assert late.status_code == 409 and late.json()["code"] == "pending_transfer_already_resolved"
    page = (await funding.client.get("/v1/transfers", params={"account_id": commitment["id"]})).json()["items"]
    assert [t["kind"] for t in page] == ["single", "pending", "expire"]
    assert page[2]["pending_id"] == pending_id and page[2]["value"]["amount_minor"] == 600


async def test_a_linked_chain_succeeds_or_fails_together(funding: RunningService, operator: dict) -> None:
    _, commitment = await funded(funding, operator, 1_000)
    a, b = await open_account(funding, operator), await open_account(funding, operator)

    def move(target: dict, amount: int, linked: bool) -> dict:
        return {
            "id": str(uuid.uuid4()),
            "debit_account_id": commitment["id"],
            "credit_account_id": target["id"],
            "amount_minor": amount,
            "currency": "USD",
            "code": "split",
            "linked": linked,
        }

    chain_fails = [move(a, 600, True), move(b, 600, False)]
    alone = move(a, 100, False)
    response = await funding.client.post(
        "/v1/transfers/batch", json={"transfers": [*chain_fails, alone]}, headers=operator
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert [r["result"] for r in out["results"]] == ["refused", "refused", "created"]
    assert [r["error"]["code"] for r in out["results"][:2]] == ["linked_transfer_failed", "exceeds_credits"]
    assert (out["created"], out["refused"]) == (1, 2)
    assert (await account(funding, b["id"]))["credits_posted_minor"] == 0
    assert (await account(funding, a["id"]))["credits_posted_minor"] == 100
    open_chain = await funding.client.post(
        "/v1/transfers/batch", json={"transfers": [move(a, 1, True)]}, headers=operator
    )
    assert open_chain.json()["results"][0]["error"]["code"] == "linked_chain_open"


async def test_an_exchange_is_a_linked_pair_through_clearing_accounts(funding: RunningService, operator: dict) -> None:
    source, usd = await funded(funding, operator, 10_000)
    clearing_usd = await open_account(funding, operator, "clearing", "USD")
    clearing_ves = await open_account(funding, operator, "clearing", "VES")
    ves = await open_account(funding, operator, "commune", "VES")
    base_id, counter_id = str(uuid.uuid4()), str(uuid.uuid4())
    exchange = {"base_id": base_id, "counter_id": counter_id, "rate": "36.4218"}

    def legs(counter_amount: int) -> list[dict]:
        return [
            {
                "id": base_id,
                "debit_account_id": usd["id"],
                "credit_account_id": clearing_usd["id"],
                "amount_minor": 1_001,
                "currency": "USD",
                "code": "exchange",
                "exchange": exchange,
                "linked": True,
            },
            {
                "id": counter_id,
                "debit_account_id": clearing_ves["id"],
                "credit_account_id": ves["id"],
                "amount_minor": counter_amount,
                "currency": "VES",
                "code": "exchange",
                "exchange": exchange,
            },
        ]

    wrong = await funding.client.post("/v1/transfers/batch", json={"transfers": legs(36_400)}, headers=operator)
    assert {r["error"]["code"] for r in wrong.json()["results"]} <= {
        "exchange_amount_mismatch",
        "linked_transfer_failed",
    }
    # 1,001 x 36.4218 = 36,458.2218: rounded half to even, 36,458.
    wrong_rounding = await funding.client.post(
        "/v1/transfers/batch", json={"transfers": legs(36_459)}, headers=operator
    )
    assert wrong_rounding.json()["refused"] == 2
    response = await funding.client.post("/v1/transfers/batch", json={"transfers": legs(36_458)}, headers=operator)
    assert response.json()["created"] == 2, response.text
    stored = response.json()["results"][1]["transfer"]
    assert stored["exchange"] == exchange and stored["value"] == {"amount_minor": 36_458, "currency": "VES"}
    assert (await account(funding, ves["id"]))["credits_posted_minor"] == 36_458
    assert source["currency"] == "USD"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"amount_minor": 0}, 422, "validation_error"),
        ({"amount_minor": -5}, 422, "validation_error"),
        ({"amount_minor": 10.0}, 422, "validation_error"),
        ({"amount_minor": "10"}, 422, "validation_error"),
        ({"currency": "VES"}, 422, "currency_mismatch"),
        ({"credit_account_id": "00000000-0000-4000-8000-000000000000"}, 404, "credit_account_not_found"),
        ({"amount_minor": 5_000}, 409, "exceeds_credits"),
        ({"reference": "two\nlines"}, 422, "reference_invalid"),
        ({"kind": "expire"}, 422, "validation_error"),
        ({"kind": "post"}, 422, "pending_id_must_match_kind"),
        ({"timeout_seconds": 5}, 422, "timeout_reserved_for_pending"),
    ],
)
async def test_bad_transfers_are_refused_and_write_nothing(
    funding: RunningService, operator: dict, change: dict, status: int, code: str
) -> None:
    _, commitment = await funded(funding, operator, 1_000)
    commune = await open_account(funding, operator)
    body = {
        "debit_account_id": commitment["id"],
        "credit_account_id": commune["id"],
        "amount_minor": 10,
        "currency": "USD",
        **change,
    }
    response = await send(funding, operator, **body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert (await account(funding, commitment["id"]))["debits_posted_minor"] == 0
    assert (await account(funding, commune["id"]))["credits_posted_minor"] == 0


async def test_a_closed_account_takes_no_transfer(funding: RunningService, operator: dict) -> None:
    _, commitment = await funded(funding, operator, 1_000)
    commune = await open_account(funding, operator)
    reserve = await send(
        funding,
        operator,
        kind="pending",
        debit_account_id=commitment["id"],
        credit_account_id=commune["id"],
        amount_minor=10,
        currency="USD",
    )
    refused = await funding.client.post(f"/v1/accounts/{commune['id']}/close", headers=operator)
    assert refused.status_code == 409 and refused.json()["code"] == "account_has_pending"
    assert (await send(funding, operator, kind="void", pending_id=reserve.json()["id"])).status_code == 201
    closed = await funding.client.post(f"/v1/accounts/{commune['id']}/close", headers=operator)
    assert closed.status_code == 200 and closed.json()["closed"] is True
    again = await funding.client.post(f"/v1/accounts/{commune['id']}/close", headers=operator)
    assert again.status_code == 200
    late = await send(
        funding,
        operator,
        debit_account_id=commitment["id"],
        credit_account_id=commune["id"],
        amount_minor=1,
        currency="USD",
    )
    assert late.status_code == 409 and late.json()["code"] == "credit_account_closed"


async def test_only_operators_write_the_ledger(funding: RunningService, identity: Identity) -> None:
    body = {"key": f"commune:{uuid.uuid4()}:USD", "currency": "USD", "kind": "commune"}
    assert (await funding.client.post("/v1/accounts", json=body)).status_code == 401
    for role, code in ((Role.AUDITOR, "VE"), (Role.REGIONAL_OFFICIAL, "VE.01")):
        headers = await identity.headers(role, code)
        response = await funding.client.post("/v1/accounts", json=body, headers=headers)
        assert response.status_code == 403 and response.json()["code"] == "forbidden_role"
    assert (await funding.client.get("/v1/accounts", params={"key": body["key"]})).json()["items"] == []


async def test_the_journal_adds_up_to_the_published_balances(funding: RunningService, operator: dict) -> None:
    """Rebuild every account from the journal's entries (read back from its tables) and compare
    with `/v1/ledger/balances`, which names the journal size it reflects."""
    _, commitment = await funded(funding, operator, 2_000)
    commune = await open_account(funding, operator)
    reserve = await send(
        funding,
        operator,
        kind="pending",
        debit_account_id=commitment["id"],
        credit_account_id=commune["id"],
        amount_minor=900,
        currency="USD",
    )
    await send(funding, operator, kind="post", pending_id=reserve.json()["id"], amount_minor=800)
    response = await funding.client.get("/v1/ledger/balances")
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert lines[0] == entries.BALANCES_V1 and lines[1] == f"origin {journal.DEFAULT_ORIGIN}"
    size = int(lines[2].removeprefix("size "))
    published = {p[1]: tuple(int(x) for x in p[2:]) for p in (line.split() for line in lines[3:])}
    async with funding.runtime.db.engine.connect() as conn:
        raw = await conn.execute(
            text("SELECT data FROM tlog_entries WHERE origin = :origin AND idx < :size ORDER BY idx"),
            {"origin": journal.DEFAULT_ORIGIN, "size": size},
        )
        texts = [bytes(row[0]).decode() for row in raw]
    rebuilt = rebuild(texts)
    assert rebuilt == published
    assert published[commitment["id"]] == (800, 2_000, 0, 0)
    async with funding.runtime.db.transaction() as session:
        assert await ledger.audit(session) == []


def rebuild(texts: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """An outsider's replay of docs/ledger.md's entries."""
    totals: dict[str, list[int]] = {}
    pendings: dict[str, int] = {}
    for entry in texts:
        lines = entry.splitlines()
        fields = dict(line.split(" ", 1) if " " in line else (line, "") for line in lines[1:])
        if lines[0] == entries.ACCOUNT_V1:
            totals[fields["account"]] = [0, 0, 0, 0]
        elif lines[0] == entries.TRANSFER_V1:
            debit, credit, amount = totals[fields["debit"]], totals[fields["credit"]], int(fields["amount"])
            kind = fields["kind"]
            if kind == "pending":
                pendings[fields["transfer"]] = amount
                debit[2] += amount
                credit[3] += amount
            elif kind in ("post", "void", "expire"):
                held = pendings.pop(fields["pending"])
                debit[2] -= held
                credit[3] -= held
            if kind in ("single", "post"):
                debit[0] += amount
                credit[1] += amount
    return {aid: (t[0], t[1], t[2], t[3]) for aid, t in totals.items()}
