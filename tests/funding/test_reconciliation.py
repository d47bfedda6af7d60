"""Reconciliation of an external statement (CSV) with the ledger, through a real funding service:
exact matches, duplicates, differences of amount, reference and direction, transfers outside the
statement's period, reservations still pending, re-imports of the same file, bad files refused
whole with nothing stored, paging of long lists, and who may import."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from comuna_funding.domain import reconciliation
from comuna_funding.domain.reconciliation import Movement, StatementLine
from comuna_funding.vocabulary import StatementDirection
from comuna_platform.auth.roles import Role
from tests.support.identity import Identity
from tests.support.service import RunningService

pytestmark = pytest.mark.asyncio

HEADER = "date,reference,amount_minor,currency,direction\n"
CSV = {"content-type": "text/csv"}
DEBIT, CREDIT = StatementDirection.DEBIT, StatementDirection.CREDIT


@pytest_asyncio.fixture(scope="module")
async def operator(identity: Identity) -> dict[str, str]:
    return await identity.headers(Role.OPERATOR, "VE")


async def open_account(funding: RunningService, operator: dict[str, str], kind: str, **flags: bool) -> str:
    body = {"key": f"{kind}:{uuid.uuid4()}:USD", "currency": "USD", "kind": kind, "flags": flags}
    response = await funding.client.post("/v1/accounts", json=body, headers=operator)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def send(funding: RunningService, operator: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("id", str(uuid.uuid4()))
    body.setdefault("code", "test_move")
    body.setdefault("currency", "USD")
    response = await funding.client.post("/v1/transfers", json=body, headers=operator)
    assert response.status_code == 201, response.text
    return dict(response.json())


def day_of(transfer: dict[str, Any]) -> date:
    return datetime.fromisoformat(transfer["date"]).date()


def csv_of(*lines: tuple[date, str, int, str]) -> str:
    return HEADER + "".join(f"{d.isoformat()},{ref},{amount},USD,{side}\n" for d, ref, amount, side in lines)


async def import_csv(
    funding: RunningService, operator: dict[str, str], account_id: str, body: str | bytes, status: int = 201
) -> dict[str, Any]:
    content = body.encode() if isinstance(body, str) else body
    response = await funding.client.post(
        f"/v1/accounts/{account_id}/statements", content=content, headers={**operator, **CSV}
    )
    assert response.status_code == status, response.text
    return dict(response.json())


async def stored(funding: RunningService, account_id: str) -> tuple[int, int, int]:
    """(statements, lines, ledger items) stored for the account."""
    async with funding.runtime.db.transaction() as session:
        row = (
            await session.execute(
                text(
                    "SELECT (SELECT count(*) FROM statements WHERE account_id = :a), "
                    "(SELECT count(*) FROM statement_lines l JOIN statements s ON s.id = l.statement_id "
                    "WHERE s.account_id = :a), "
                    "(SELECT count(*) FROM statement_transfers t JOIN statements s ON s.id = t.statement_id "
                    "WHERE s.account_id = :a)"
                ),
                {"a": account_id},
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


@pytest_asyncio.fixture
async def funded(funding: RunningService, operator: dict[str, str]) -> tuple[str, str, str]:
    """A fresh source, a commitment it funds and a commune account: (source, commitment, commune)."""
    source = await open_account(funding, operator, "source")
    commitment = await open_account(funding, operator, "commitment", debits_must_not_exceed_credits=True)
    commune = await open_account(funding, operator, "commune")
    return source, commitment, commune


def lines_of(listed: dict[str, Any]) -> list[int]:
    return [item["line"] for item in listed["items"]]


# --- the pure pairing ------------------------------------------------------------------------


async def test_pairing_is_earliest_first_each_side_once() -> None:
    day = date(2026, 11, 2)
    lines = [
        StatementLine(2, day + timedelta(days=1), "A", 100, DEBIT),
        StatementLine(3, day, "A", 100, DEBIT),
        StatementLine(4, day, "A", 100, DEBIT),
        StatementLine(5, day, "B", 100, DEBIT),
    ]
    at = datetime(2026, 11, 2, 12)

    def moved(seq: int, reference: str, amount: int = 100, side: StatementDirection = DEBIT) -> Movement:
        return Movement(uuid.UUID(int=seq), seq, at, reference, amount, side)

    posted = [moved(9, "A"), moved(7, "A"), moved(8, "B", side=CREDIT), moved(10, "B", 101)]
    result = reconciliation.match(lines, posted, [moved(11, "A")])
    # Lines 3 and 4 (the earliest, by date then line) go to transfers 7 and 9, in ledger order.
    assert result.matched == {3: uuid.UUID(int=7), 4: uuid.UUID(int=9)}
    assert [line.line for line in result.unmatched_lines] == [2, 5]
    assert [m.seq for m in result.unmatched_movements] == [8, 10]
    assert result.pending_for == {2: uuid.UUID(int=11)}
    # The same inputs in another order pair the same way.
    again = reconciliation.match(list(reversed(lines)), list(reversed(posted)), [moved(11, "A")])
    assert again == result


# --- the service -----------------------------------------------------------------------------


async def test_exact_matches_and_the_stored_report(
    funding: RunningService, operator: dict[str, str], funded: tuple[str, str, str]
) -> None:
    source, commitment, _ = funded
    first = await send(
        funding, operator, debit_account_id=source, credit_account_id=commitment, amount_minor=50_000, reference="DEP-1"
    )
    await send(
        funding, operator, debit_account_id=source, credit_account_id=commitment, amount_minor=7_000, reference="DEP-2"
    )
    await send(
        funding, operator, debit_account_id=commitment, credit_account_id=source, amount_minor=1_500, reference="REV-1"
    )
    day = day_of(first)
    body = csv_of((day, "DEP-1", 50_000, "debit"), (day, "DEP-2", 7_000, "debit"), (day, "REV-1", 1_500, "credit"))

    report = await import_csv(funding, operator, source, body)

    assert report["account_id"] == source and report["currency"] == "USD" and report["lines"] == 3
    assert report["period"] == {"from": day.isoformat(), "to": day.isoformat()}
    matched = report["matched"]
    assert (matched["count"], matched["debits_minor"], matched["credits_minor"]) == (3, 57_000, 1_500)
    assert lines_of(matched) == [2, 3, 4] and matched["next_page_token"] is None
    assert matched["items"][0]["transfer_id"] == first["id"] and matched["items"][0]["seq"] == first["seq"]
    for name in ("unmatched_in_statement", "unmatched_in_ledger", "pending"):
        assert report[name]["count"] == 0 and report[name]["items"] == []

    got = await funding.client.get(f"/v1/accounts/{source}/statements/{report['id']}")
    assert got.status_code == 200 and got.json() == report
    assert got.headers["cache-control"].startswith("public")
    # Another account's path does not reach it.
    elsewhere = await funding.client.get(f"/v1/accounts/{commitment}/statements/{report['id']}")
    assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "statement_not_found"


async def test_duplicates_pair_once_each_earliest_first(
    funding: RunningService, operator: dict[str, str], funded: tuple[str, str, str]
) -> None:
    source, commitment, _ = funded
    transfers = [
        await send(
            funding, operator, debit_account_id=source, credit_account_id=commitment, amount_minor=900, reference="DUP"
        )
        for _ in range(2)
    ]
    day = day_of(transfers[0])
    # Three equal lines, the last one dated a day earlier: it is the earliest, so it pairs first.
    body = csv_of(
        (day, "DUP", 900, "debit"), (day, "DUP", 900, "debit"), (day - timedelta(days=1), "DUP", 900, "debit")
    )

    report = await import_csv(funding, operator, source, body)

    assert lines_of(report["matched"]) == [2, 4]
    by_line = {item["line"]: item["transfer_id"] for item in report["matched"]["items"]}
    assert by_line == {4: transfers[0]["id"], 2: transfers[1]["id"]}
    assert lines_of(report["unmatched_in_statement"]) == [3]
    assert report["unmatched_in_ledger"]["count"] == 0
    assert report["period"] == {"from": (day - timedelta(days=1)).isoformat(), "to": day.isoformat()}


async def test_amount_reference_and_direction_differences_match_nothing(
    funding: RunningService, operator: dict[str, str], funded: tuple[str, str, str]
) -> None:
    source, commitment, _ = funded
    moved = [
        await send(
            funding, operator, debit_account_id=source, credit_account_id=commitment, amount_minor=amount, reference=ref
        )
        for amount, ref in ((1_000, "AMT"), (2_000, "REF"), (3_000, "DIR"), (4_000, "OK"))
    ]
    day = day_of(moved[0])
    body = csv_of(
        (day, "AMT", 1_001, "debit"),  # one cent more
        (day, "REF-X", 2_000, "debit"),  # another reference
        (day, "DIR", 3_000, "credit"),  # the other side
        (day, "OK", 4_000, "debit"),
    )

    report = await import_csv(funding, operator, source, body)

    assert lines_of(report["matched"]) == [5]
    unmatched = report["unmatched_in_statement"]
    assert lines_of(unmatched) == [2, 3, 4]
    assert (unmatched["count"], unmatched["debits_minor"], unmatched["credits_minor"]) == (3, 3_001, 3_000)
    ledger = report["unmatched_in_ledger"]
    assert [item["transfer_id"] for item in ledger["items"]] == [t["id"] for t in moved[:3]]
    assert (ledger["count"], ledger["debits_minor"], ledger["credits_minor"]) == (3, 6_000, 0)
    assert [item["line"] for item in ledger["items"]] == [None, None, None]
    assert [item["reference"] for item in ledger["items"]] == ["AMT", "REF", "DIR"]
    assert all(item["direction"] == "debit" and item["date"] == day.isoformat() for item in ledger["items"])


async def test_transfers_outside_the_period_are_neither_matched_nor_listed(
    funding: RunningService, operator: dict[str, str], funded: tuple[str, str, str]
) -> None:
    source, commitment, _ = funded
    today = day_of(
        await send(
            funding, operator, debit_account_id=source, credit_account_id=commitment, amount_minor=600, reference="LATE"
        )
    )
    # The statement covers the two days before: today's transfer is not in it, even with the same terms.
    body = csv_of((today - timedelta(days=2), "OTHER", 10, "credit"), (today - timedelta(days=1), "LATE", 600, "debit"))

    report = await import_csv(funding, operator, source, body)

    assert report["period"]["to"] == (today - timedelta(days=1)).isoformat()
    assert report["matched"]["count"] == 0
    assert lines_of(report["unmatched_in_statement"]) == [2, 3]
    assert report["unmatched_in_ledger"]["count"] == 0 and report["pending"]["count"] == 0


async def test_pending_reservations_are_listed_apart(
    funding: RunningService, operator: dict[str, str], funded: tuple[str, str, str]
) -> None:
    source, commitment, commune = funded
    await send(funding, operator, debit_account_id=source, credit_account_id=commitment, amount_minor=10_000)
    open_hold = await send(
        funding,
        operator,
        kind="pending",
        debit_account_id=commitment,
        credit_account_id=commune,
        amount_minor=2_500,
        reference="TR-1",
    )
    posted_hold = await send(
        funding,
        operator,
        kind="pending",
        debit_account_id=commitment,
        credit_account_id=commune,
        amount_minor=3_000,
        reference="TR-2",
    )
    # Posted without a reference of its own: the reservation's reference is what a bank shows.
    post = await send(funding, operator, kind="post", pending_id=posted_hold["id"], amount_minor=2_000)
    voided = await send(
        funding,
        operator,
        kind="pending",
        debit_account_id=commitment,
        credit_account_id=commune,
        amount_minor=700,
        reference="TR-3",
    )
    await send(funding, operator, kind="void", pending_id=voided["id"])
    day = day_of(open_hold)
    # The bank already booked the open reservation; and it shows the posted one at what was posted.
    body = csv_of((day, "TR-1", 2_500, "credit"), (day, "TR-2", 2_000, "credit"))

    report = await import_csv(funding, operator, commune, body)

    assert [i["transfer_id"] for i in report["matched"]["items"]] == [post["id"]]
    assert report["matched"]["items"][0]["reference"] == "TR-2"
    [waiting] = report["unmatched_in_statement"]["items"]
    assert waiting["line"] == 2 and waiting["pending_transfer_id"] == open_hold["id"]
    pending = report["pending"]
    assert (pending["count"], pending["credits_minor"], pending["debits_minor"]) == (1, 2_500, 0)
    assert pending["items"][0]["transfer_id"] == open_hold["id"]
    # The voided reservation moved nothing and holds nothing: in no list.
    assert report["unmatched_in_ledger"]["count"] == 0


async def test_the_same_file_again_is_the_same_statement(
    funding: RunningService, operator: dict[str, str], funded: tuple[str, str, str]
) -> None:
    source, commitment, _ = funded
    day = day_of(
        await send(
            funding, operator, debit_account_id=source, credit_account_id=commitment, amount_minor=100, reference="ONCE"
        )
    )
    body = csv_of((day, "ONCE", 100, "debit"))
    first = await import_csv(funding, operator, source, body)
    # Meanwhile the ledger moves on; the stored report does not.
    await send(funding, operator, debit_account_id=source, credit_account_id=commitment, amount_minor=5)

    again = await import_csv(funding, operator, source, body, status=200)

    assert again == first
    assert await stored(funding, source) == (1, 1, 0)
    other = await import_csv(funding, operator, source, body + f"{day.isoformat()},NEW,5,USD,debit\n")
    assert other["id"] != first["id"] and other["unmatched_in_statement"]["count"] == 1
    assert other["unmatched_in_ledger"]["count"] == 1
    assert (await stored(funding, source))[0] == 2


@pytest.mark.parametrize(
    ("body", "line", "code"),
    [
        (HEADER + "2026-11-02,A,10.50,USD,debit\n", 2, "amount_not_integer"),
        (HEADER + "2026-11-02,A,1050,USD,debit\n2026-11-02,B,12.5,USD,debit\n", 3, "amount_not_integer"),
        (HEADER + "2026-11-02,A,-10,USD,debit\n", 2, "amount_invalid"),
        (HEADER + "2026-11-02,A,0,USD,debit\n", 2, "amount_invalid"),
        (HEADER + "02/11/2026,A,10,USD,debit\n", 2, "date_invalid"),
        (HEADER + "2026-02-30,A,10,USD,debit\n", 2, "date_invalid"),
        (HEADER + "2999-01-01,A,10,USD,debit\n", 2, "date_in_future"),
        (HEADER + "2026-11-02,A,10,VES,debit\n", 2, "currency_mismatch"),
        (HEADER + "2026-11-02,A,10,usd,debit\n", 2, "currency_invalid"),
        (HEADER + "2026-11-02,A,10,USD,out\n", 2, "direction_invalid"),
        (HEADER + "2026-11-02,A,10,USD\n", 2, "row_shape"),
        ("date,reference,amount_minor,currency\n2026-11-02,A,10,USD\n", 1, "column_missing"),
        ("date,reference,amount,currency,direction\n", 1, "column_unknown"),
        (HEADER, 2, "statement_empty"),
        ("", 1, "file_empty"),
        (HEADER.encode() + b"2026-11-02,caf\xe9,10,USD,debit\n", 1, "encoding_invalid"),
        (HEADER + '2026-11-02,"A\x07",10,USD,debit\n', 2, "reference_invalid"),
        (HEADER + f"2026-11-02,{'R' * 501},10,USD,debit\n", 2, "reference_too_long"),
    ],
)
async def test_a_bad_file_is_refused_whole_and_nothing_is_stored(
    funding: RunningService,
    operator: dict[str, str],
    funded: tuple[str, str, str],
    body: str | bytes,
    line: int,
    code: str,
) -> None:
    source = funded[0]
    problem = await import_csv(funding, operator, source, body, status=422)
    assert problem["code"] == "import_invalid", problem
    assert {"line": line, "code": code} in [{"line": e["line"], "code": e["code"]} for e in problem["errors"]], problem
    assert await stored(funding, source) == (0, 0, 0)


async def test_every_bad_line_is_listed(
    funding: RunningService, operator: dict[str, str], funded: tuple[str, str, str]
) -> None:
    source = funded[0]
    body = HEADER + "2026-11-02,A,10,USD,debit\n2026-11-02,B,1.5,USD,debit\nx,C,7,EUR,up\n"
    problem = await import_csv(funding, operator, source, body, status=422)
    found = sorted((e["line"], e["code"], e.get("field")) for e in problem["errors"])
    assert found == [
        (3, "amount_not_integer", "amount_minor"),
        (4, "currency_mismatch", "currency"),
        (4, "date_invalid", "date"),
        (4, "direction_invalid", "direction"),
    ]
    assert problem["error_count"] == 4 and await stored(funding, source) == (0, 0, 0)


async def test_only_statements_of_external_accounts_as_csv(
    funding: RunningService, operator: dict[str, str], funded: tuple[str, str, str]
) -> None:
    source, commitment, _ = funded
    body = csv_of((date(2026, 11, 2), "A", 10, "debit"))
    refused = await import_csv(funding, operator, commitment, body, status=422)
    assert refused["code"] == "account_not_reconcilable"
    missing = await import_csv(funding, operator, str(uuid.uuid4()), body, status=404)
    assert missing["code"] == "account_not_found"
    as_json = await funding.client.post(f"/v1/accounts/{source}/statements", json={"lines": []}, headers=operator)
    assert as_json.status_code == 415 and as_json.json()["code"] == "unsupported_media_type"
    unknown = await funding.client.get(f"/v1/accounts/{source}/statements/{uuid.uuid4()}")
    assert unknown.status_code == 404 and unknown.json()["code"] == "statement_not_found"
    assert await stored(funding, source) == (0, 0, 0) and await stored(funding, commitment) == (0, 0, 0)


async def test_only_operators_import_and_anyone_reads(
    funding: RunningService, operator: dict[str, str], identity: Identity, funded: tuple[str, str, str]
) -> None:
    source, commitment, _ = funded
    day = day_of(
        await send(
            funding, operator, debit_account_id=source, credit_account_id=commitment, amount_minor=42, reference="AUTH"
        )
    )
    body = csv_of((day, "AUTH", 42, "debit")).encode()
    path = f"/v1/accounts/{source}/statements"
    anonymous = await funding.client.post(path, content=body, headers=CSV)
    assert anonymous.status_code == 401
    for role, code in ((Role.AUDITOR, "VE"), (Role.REGIONAL_OFFICIAL, "VE.01"), (Role.SPOKESPERSON, "VE.01.01.C1")):
        refused = await funding.client.post(path, content=body, headers={**await identity.headers(role, code), **CSV})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden_role", (role, refused.text)
    assert await stored(funding, source) == (0, 0, 0)
    report = await import_csv(funding, operator, source, body)
    public = await funding.client.get(f"{path}/{report['id']}")
    assert public.status_code == 200 and public.json()["matched"]["count"] == 1


async def test_long_lists_are_capped_in_the_report_and_paged(
    funding: RunningService, operator: dict[str, str], funded: tuple[str, str, str]
) -> None:
    source, commitment, _ = funded
    count = reconciliation.LISTED + 37
    batch = [
        {
            "id": str(uuid.uuid4()),
            "debit_account_id": source,
            "credit_account_id": commitment,
            "amount_minor": 100 + i,
            "currency": "USD",
            "code": "test_move",
            "reference": f"B-{i}",
        }
        for i in range(count)
    ]
    response = await funding.client.post("/v1/transfers/batch", json={"transfers": batch}, headers=operator)
    assert response.status_code == 200 and response.json()["created"] == count
    day = day_of(response.json()["results"][0]["transfer"])
    # Every transfer is on a line, and as many lines again match nothing.
    body = csv_of(
        *((day, f"B-{i}", 100 + i, "debit") for i in range(count)),
        *((day, f"X-{i}", 1, "credit") for i in range(count)),
    )

    report = await import_csv(funding, operator, source, body)

    for name in ("matched", "unmatched_in_statement"):
        listed = report[name]
        assert listed["count"] == count and len(listed["items"]) == reconciliation.LISTED
        assert listed["next_page_token"] is not None
        seen = lines_of(listed)
        token = listed["next_page_token"]
        while token:
            page = await funding.client.get(
                f"/v1/accounts/{source}/statements/{report['id']}/items",
                params={"list": name, "page_token": token, "limit": 50},
            )
            assert page.status_code == 200, page.text
            seen += [item["line"] for item in page.json()["items"]]
            token = page.json()["next_page_token"]
        first = 2 if name == "matched" else 2 + count
        assert seen == list(range(first, first + count))
    assert report["matched"]["debits_minor"] == sum(100 + i for i in range(count))
    bad = await funding.client.get(
        f"/v1/accounts/{source}/statements/{report['id']}/items", params={"list": "everything"}
    )
    assert bad.status_code == 422
    forged = await funding.client.get(
        f"/v1/accounts/{source}/statements/{report['id']}/items", params={"list": "pending", "page_token": "nope"}
    )
    assert forged.status_code == 422 and forged.json()["code"] == "invalid_page_token"
