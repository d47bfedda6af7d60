"""Funding's public REST API and its service-only gRPC API, over data written by the real use cases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio

from comuna.funding.v1 import funding_pb2 as pb
from comuna.funding.v1 import funding_pb2_grpc
from comuna_funding.domain import allocations, disbursements
from comuna_funding.service import SPEC
from comuna_platform.auth.roles import Role
from comuna_platform.rpc import error_code_of
from comuna_platform.uow import UnitOfWork
from tests.support.grpc_server import grpc_server
from tests.support.identity import Identity
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

GRANT = 1_000_000
POLICY = allocations.GrantPolicy(amount_minor=GRANT, currency="USD", funding_source="national")


@dataclass(frozen=True)
class Seeded:
    consultation_id: uuid.UUID
    allocation_ids: list[uuid.UUID]
    commune_ids: list[uuid.UUID]
    paid_milestone: uuid.UUID
    refused_milestone: uuid.UUID


@pytest_asyncio.fixture(scope="module")
async def seeded(funding: RunningService) -> Seeded:
    """Three allocations of one consultation; the first paid 250,000 once and refused once."""
    consultation_id = uuid.uuid4()
    winners = [allocations.Winner(uuid.uuid4(), f"VE.02.01.C{i}", uuid.uuid4(), f"Proyecto {i}") for i in range(3)]
    async with funding.runtime.db.transaction() as session:
        created = await allocations.allocate_grants(UnitOfWork.of(session), consultation_id, winners, POLICY)
    paid, refused = uuid.uuid4(), uuid.uuid4()
    for milestone, amount in ((paid, 250_000), (refused, 900_000)):
        async with funding.runtime.db.transaction() as session:
            await disbursements.disburse_tranche(
                UnitOfWork.of(session),
                disbursements.Tranche(
                    project_id=uuid.uuid4(),
                    milestone_id=milestone,
                    allocation_id=created[0],
                    commune_id=winners[0].commune_id,
                    amount_minor=amount,
                    currency="USD",
                ),
            )
    return Seeded(consultation_id, created, [w.commune_id for w in winners], paid, refused)


async def get(service: RunningService, path: str, status: int = 200, **params: Any) -> Any:
    response = await service.client.get(path, params=params)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


async def test_allocations_by_consultation_and_commune(funding: RunningService, seeded: Seeded) -> None:
    page = await get(funding, "/v1/allocations", consultation_id=str(seeded.consultation_id))
    assert sorted(a["id"] for a in page["items"]) == sorted(str(i) for i in seeded.allocation_ids)
    assert page["next_page_token"] is None
    one = await get(funding, "/v1/allocations", commune_id=str(seeded.commune_ids[1]))
    assert [a["id"] for a in one["items"]] == [str(seeded.allocation_ids[1])]
    assert (await get(funding, "/v1/allocations", consultation_id=str(uuid.uuid4())))["items"] == []


async def test_allocations_page_through_with_tokens(funding: RunningService, seeded: Seeded) -> None:
    seen: list[str] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"consultation_id": str(seeded.consultation_id), "limit": 1}
        if token:
            params["page_token"] = token
        page = await get(funding, "/v1/allocations", **params)
        seen += [a["id"] for a in page["items"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert sorted(seen) == sorted(str(i) for i in seeded.allocation_ids) and len(seen) == len(set(seen))


async def test_an_allocation_shows_what_was_disbursed_and_refused(funding: RunningService, seeded: Seeded) -> None:
    detail = await get(funding, f"/v1/allocations/{seeded.allocation_ids[0]}")
    assert (detail["amount_minor"], detail["currency"]) == (GRANT, "USD")
    assert (detail["disbursed_minor"], detail["remaining_minor"]) == (250_000, 750_000)
    by_milestone = {d["milestone_id"]: d for d in detail["disbursements"]}
    paid, refused = by_milestone[str(seeded.paid_milestone)], by_milestone[str(seeded.refused_milestone)]
    assert (paid["status"], paid["reason"], paid["amount_minor"]) == ("completed", None, 250_000)
    assert paid["transfer_id"] is not None
    assert (refused["status"], refused["reason"], refused["transfer_id"]) == ("rejected", "exceeds_allocation", None)
    untouched = await get(funding, f"/v1/allocations/{seeded.allocation_ids[1]}")
    assert (untouched["disbursed_minor"], untouched["disbursements"]) == (0, [])


async def test_accounts_show_their_balances(funding: RunningService, seeded: Seeded) -> None:
    detail = await get(funding, f"/v1/allocations/{seeded.allocation_ids[0]}")
    earmark = await get(funding, f"/v1/accounts/{detail['account_id']}")
    assert earmark["kind"] == "commitment" and earmark["currency"] == "USD"
    assert (earmark["credits_posted_minor"], earmark["debits_posted_minor"], earmark["balance_minor"]) == (
        GRANT,
        250_000,
        750_000,
    )
    [commune] = (await get(funding, "/v1/accounts", key=f"commune:{seeded.commune_ids[0]}:USD"))["items"]
    assert (commune["kind"], commune["balance_minor"]) == ("commune", 250_000)
    [treasury] = (await get(funding, "/v1/accounts", key="treasury:national:USD"))["items"]
    assert treasury["kind"] == "source" and treasury["balance_minor"] <= -3 * GRANT
    sources = await get(funding, "/v1/accounts", kind="source")
    assert treasury["id"] in [a["id"] for a in sources["items"]]


async def test_transfers_are_published_like_ocds_transactions(funding: RunningService, seeded: Seeded) -> None:
    detail = await get(funding, f"/v1/allocations/{seeded.allocation_ids[0]}")
    page = await get(funding, "/v1/transfers", account_id=detail["account_id"])
    grant, tranche = page["items"]
    assert grant["id"] == detail["transfer_id"] and grant["code"] == "grant_allocation"
    assert grant["value"] == {"amount_minor": GRANT, "currency": "USD"}
    assert grant["payer"]["key"] == "treasury:national:USD"
    assert grant["payee"] == {"id": detail["account_id"], "key": f"allocation:{detail['id']}"}
    assert tranche["code"] == "tranche_disbursement" and tranche["value"]["amount_minor"] == 250_000
    assert tranche["payer"]["id"] == detail["account_id"]
    assert tranche["payee"]["key"] == f"commune:{seeded.commune_ids[0]}:USD"
    assert grant["seq"] < tranche["seq"] and grant["date"] <= tranche["date"]

    # Paging through the whole ledger visits every transfer once, in ledger order.
    seqs: list[int] = []
    token = ""
    while True:
        page = await get(funding, "/v1/transfers", page_token=token, limit=2)
        seqs += [t["seq"] for t in page["items"]]
        if page["next_page_token"] is None:
            break
        token = page["next_page_token"]
    assert seqs == sorted(set(seqs)) and len(seqs) >= 4


async def test_ledger_totals_balance(funding: RunningService, seeded: Seeded) -> None:
    totals = await get(funding, "/v1/ledger/totals")
    assert totals["balanced"]
    [usd] = [t for t in totals["items"] if t["currency"] == "USD"]
    assert usd["balanced"] and usd["debits_minor"] == usd["credits_minor"] == usd["transferred_minor"]
    assert usd["transfers"] >= 4 and usd["debits_minor"] >= 3 * GRANT + 250_000


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/v1/allocations/{unknown}", {}, 404, "allocation_not_found"),
        ("/v1/allocations/not-a-uuid", {}, 422, "validation_error"),
        ("/v1/allocations", {"consultation_id": "nope"}, 422, "validation_error"),
        ("/v1/allocations", {"limit": 0}, 422, "validation_error"),
        ("/v1/allocations", {"limit": 501}, 422, "validation_error"),
        ("/v1/accounts/{unknown}", {}, 404, "account_not_found"),
        ("/v1/accounts/12345", {}, 422, "validation_error"),
        ("/v1/accounts", {"kind": "bank"}, 422, "validation_error"),
        ("/v1/transfers", {"account_id": "{unknown}"}, 404, "account_not_found"),
        ("/v1/transfers", {"account_id": "x"}, 422, "validation_error"),
        ("/v1/transfers", {"page_token": "abc"}, 422, "invalid_page_token"),
        # A sequence past bigint (once a 500 from the database) is refused in the token.
        ("/v1/transfers", {"page_token": "djE6WzkyMjMzNzIwMzY4NTQ3NzU4MDhd"}, 422, "invalid_page_token"),
        ("/v1/transfers", {"page_token": "djE6Wy0xXQ"}, 422, "invalid_page_token"),
        ("/v1/allocations", {"page_token": "djE6WyJcdTAwMDAiXQ"}, 422, "invalid_page_token"),
        ("/v1/accounts", {"page_token": "x" * 513}, 422, "validation_error"),
    ],
)
async def test_bad_requests_are_problems_never_500(
    funding: RunningService, path: str, params: dict[str, Any], status: int, code: str
) -> None:
    unknown = str(uuid.uuid4())
    body = await get(
        funding, path.format(unknown=unknown), status, **{k: str(v).format(unknown=unknown) for k, v in params.items()}
    )
    assert body["code"] == code and body["status"] == status


async def test_allocations_and_totals_are_read_only_and_ledger_writes_need_a_token(
    funding: RunningService, seeded: Seeded
) -> None:
    for method, path in (
        ("POST", "/v1/allocations"),
        ("DELETE", f"/v1/allocations/{seeded.allocation_ids[0]}"),
        ("PUT", "/v1/ledger/totals"),
    ):
        response = await funding.client.request(method, path, json={})
        assert response.status_code == 405, (method, path, response.status_code)
    for path in ("/v1/transfers", "/v1/transfers/batch", "/v1/accounts"):
        response = await funding.client.post(path, json={})
        assert response.status_code == 401, (path, response.status_code)


async def test_parked_messages_need_a_national_assignment_in_identity(
    funding: RunningService, identity: Identity, issuer: TestIssuer
) -> None:
    listing = "/v1/parked-messages"
    replay = "/v1/parked-messages/999999999:replay"
    operator = await identity.headers(Role.OPERATOR, "VE")
    assert (await funding.client.get(listing, headers=operator)).status_code == 200
    assert (await funding.client.post(replay, headers=operator)).status_code == 404
    auditor = await identity.headers(Role.AUDITOR, "VE")
    assert (await funding.client.get(listing, headers=auditor)).status_code == 200
    refused = await funding.client.post(replay, headers=auditor)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_role")
    for headers in (
        await identity.headers(Role.SPOKESPERSON, "VE.01.01.C1"),
        await identity.headers(Role.REGIONAL_OFFICIAL, "VE.01"),
        issuer.headers(subject="nobody", realm_access={"roles": ["operator"]}, comuna_territories=["VE"]),
    ):
        response = await funding.client.get(listing, headers=headers)
        assert (response.status_code, response.json()["code"]) == (403, "forbidden_role")
    assert (await funding.client.get(listing)).status_code == 401


# --- gRPC ------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def stub(funding: RunningService) -> AsyncIterator[funding_pb2_grpc.FundingServiceStub]:
    async with grpc_server(SPEC, funding) as target, grpc.aio.insecure_channel(target) as channel:
        yield funding_pb2_grpc.FundingServiceStub(channel)  # type: ignore[no-untyped-call]


def bearer(issuer: TestIssuer, *roles: str) -> list[tuple[str, str]]:
    # Service tokens are projects' client: funding's contract lets projects call it.
    if "service" in roles:
        token = issuer.token(roles=list(roles), client_id="svc-projects")
    else:  # a person whom Keycloak gives these realm roles: they count for nothing
        token = issuer.token(realm_access={"roles": list(roles)}, comuna_territories=["VE"])
    return [("authorization", f"Bearer {token}")]


async def test_grpc_get_allocation(
    stub: funding_pb2_grpc.FundingServiceStub, issuer: TestIssuer, seeded: Seeded
) -> None:
    reply = await stub.GetAllocation(
        pb.GetAllocationRequest(allocation_id=str(seeded.allocation_ids[0])), metadata=bearer(issuer, "service")
    )
    assert reply.allocation_id == str(seeded.allocation_ids[0])
    assert reply.consultation_id == str(seeded.consultation_id)
    assert reply.commune_id == str(seeded.commune_ids[0]) and reply.funding_source == "national"
    assert (reply.amount.amount_minor, reply.amount.currency) == (GRANT, "USD")
    assert (reply.disbursed.amount_minor, reply.disbursed.currency) == (250_000, "USD")


async def test_grpc_ledger_totals(
    stub: funding_pb2_grpc.FundingServiceStub, issuer: TestIssuer, seeded: Seeded
) -> None:
    reply = await stub.GetLedgerTotals(pb.GetLedgerTotalsRequest(), metadata=bearer(issuer, "service"))
    [usd] = [t for t in reply.totals if t.currency == "USD"]
    assert usd.debits_minor == usd.credits_minor >= 3 * GRANT and usd.transfers >= 4


@pytest.mark.parametrize(
    ("roles", "allocation_id", "status", "code"),
    [
        (None, "{known}", grpc.StatusCode.UNAUTHENTICATED, None),
        (("overseer",), "{known}", grpc.StatusCode.PERMISSION_DENIED, "forbidden_role"),
        (("service",), "not-a-uuid", grpc.StatusCode.INVALID_ARGUMENT, "invalid_id"),
        (("service",), "{unknown}", grpc.StatusCode.NOT_FOUND, "allocation_not_found"),
    ],
)
async def test_grpc_errors(
    stub: funding_pb2_grpc.FundingServiceStub,
    issuer: TestIssuer,
    seeded: Seeded,
    roles: tuple[str, ...] | None,
    allocation_id: str,
    status: grpc.StatusCode,
    code: str | None,
) -> None:
    request = pb.GetAllocationRequest(
        allocation_id=allocation_id.format(known=seeded.allocation_ids[0], unknown=uuid.uuid4())
    )
    metadata = bearer(issuer, *roles) if roles is not None else []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetAllocation(request, metadata=metadata)
    assert raised.value.code() == status
    if code is not None:
        assert error_code_of(raised.value) == code
    with pytest.raises(grpc.aio.AioRpcError) as totals:
        await stub.GetLedgerTotals(pb.GetLedgerTotalsRequest(), metadata=bearer(issuer, "overseer"))
    assert totals.value.code() == grpc.StatusCode.PERMISSION_DENIED
