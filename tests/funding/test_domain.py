"""Pure rules of the funding domain: limits, derived ids, tranche refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from comuna_funding.domain import disbursements, ids
from comuna_funding.domain.postings import MAX_AMOUNT, Book, NewTransfer, evaluate
from comuna_funding.storage.ledger_store import AccountRow
from comuna_funding.storage.models import Allocation
from comuna_platform.errors import FailedPrecondition


def row(debits: int = 0, credits: int = 0, *, limit_debits: bool = False, limit_credits: bool = False) -> AccountRow:
    return AccountRow(
        id=uuid.uuid4(),
        key=f"k:{uuid.uuid4()}",
        currency="USD",
        kind="commune",
        debits_must_not_exceed_credits=limit_debits,
        credits_must_not_exceed_debits=limit_credits,
        debits_posted=debits,
        credits_posted=credits,
        created_at=datetime.now(UTC),
    )


def move(debit: AccountRow, credit: AccountRow, amount: int) -> NewTransfer:
    return NewTransfer(uuid.uuid4(), debit.id, credit.id, amount, "USD", "test")


def decide(batch: list[NewTransfer], *accounts: AccountRow, atomic: bool = True) -> tuple[list[object], dict]:
    book = Book({a.id: a for a in accounts}, {}, set(), datetime.now(UTC))
    evaluation = evaluate(batch, book, atomic=atomic)
    return evaluation.decisions, evaluation.deltas


@given(held=st.integers(0, 10_000), amounts=st.lists(st.integers(1, 3_000), min_size=1, max_size=8))
def test_limits_accept_exactly_what_a_flagged_account_can_pay(held: int, amounts: list[int]) -> None:
    earmark, sink = row(0, held, limit_debits=True), row()
    batch = [move(earmark, sink, a) for a in amounts]
    decisions, deltas = decide(batch, earmark, sink)
    if sum(amounts) <= held:
        assert all(isinstance(d, NewTransfer) for d in decisions)
        assert deltas.get(earmark.id) == (sum(amounts), 0, 0, 0)
        assert deltas.get(sink.id) == (0, sum(amounts), 0, 0)
    else:
        assert deltas == {}
        codes = {d.code for d in decisions if isinstance(d, FailedPrecondition)}
        assert "exceeds_credits" in codes and codes <= {"exceeds_credits", "linked_transfer_failed"}


@given(held=st.integers(0, 10_000), amounts=st.lists(st.integers(1, 3_000), min_size=1, max_size=8))
def test_independent_transfers_are_decided_one_by_one(held: int, amounts: list[int]) -> None:
    earmark, sink = row(0, held, limit_debits=True), row()
    decisions, deltas = decide([move(earmark, sink, a) for a in amounts], earmark, sink, atomic=False)
    left, expected = held, []
    for amount in amounts:
        expected.append(amount <= left)
        left -= amount if amount <= left else 0
    assert [isinstance(d, NewTransfer) for d in decisions] == expected
    assert deltas.get(earmark.id, (0, 0, 0, 0))[0] == held - left


def test_limits_refuse_overflow_on_either_side() -> None:
    full, empty = row(debits=MAX_AMOUNT, credits=MAX_AMOUNT), row()
    [debit_side], _ = decide([move(full, empty, 1)], full, empty)
    assert isinstance(debit_side, FailedPrecondition) and debit_side.code == "overflows_debits_posted"
    [credit_side], _ = decide([move(empty, full, 1)], full, empty)
    assert isinstance(credit_side, FailedPrecondition) and credit_side.code == "overflows_credits_posted"


def test_derived_ids_are_stable_and_distinct() -> None:
    consultation, commune = uuid.uuid4(), uuid.uuid4()
    allocation = ids.allocation_id_for(consultation, commune, "national")
    assert allocation == ids.allocation_id_for(uuid.UUID(str(consultation).upper()), commune, "national")
    assert allocation != ids.allocation_id_for(consultation, commune, "state")
    assert allocation != ids.allocation_transfer_id_for(consultation, commune, "national")
    milestone = uuid.uuid4()
    assert ids.disbursement_id_for(milestone) != ids.disbursement_transfer_id_for(milestone)
    # The values never change: they are stored, and replays must find them again.
    assert ids.disbursement_id_for(milestone) == uuid.uuid5(ids.FUNDING_NAMESPACE, f"disbursement/{milestone}")
    assert ids.event_id_of(milestone)("funding.tranche.disbursed") == uuid.uuid5(
        ids.FUNDING_NAMESPACE, f"event/funding.tranche.disbursed/{milestone}"
    )


def test_tranche_refusal_reasons() -> None:
    commune = uuid.uuid4()
    allocation = Allocation(id=uuid.uuid4(), commune_id=commune, currency="USD")

    def tranche(**changes: object) -> disbursements.Tranche:
        fields: dict[str, object] = {
            "project_id": uuid.uuid4(),
            "milestone_id": uuid.uuid4(),
            "allocation_id": allocation.id,
            "commune_id": commune,
            "amount_minor": 10,
            "currency": "USD",
            **changes,
        }
        return disbursements.Tranche(**fields)  # type: ignore[arg-type]

    assert disbursements.refusal(tranche(), allocation) is None
    assert disbursements.refusal(tranche(), None) == "allocation_unknown"
    assert disbursements.refusal(tranche(amount_minor=0), allocation) == "invalid_amount"
    assert disbursements.refusal(tranche(currency="EUR"), allocation) == "currency_mismatch"
    assert disbursements.refusal(tranche(commune_id=uuid.uuid4()), allocation) == "commune_mismatch"
    assert disbursements.refusal(tranche(commune_id=None), allocation) == "commune_mismatch"
