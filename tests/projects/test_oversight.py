"""Oversight's pure rules (`domain.oversight`): nobody verifies their own milestone, residents'
reports follow their states, and spending never passes what was disbursed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comuna_platform.errors import FailedPrecondition, Forbidden, InvalidInput
from comuna_projects.domain.oversight import (
    REPORT_MOVES,
    Expenditure,
    ReportMove,
    check_expenditure,
    check_verifier,
    move_report,
)
from comuna_projects.vocabulary import ReportState

TODAY = date(2027, 3, 15)


def test_a_milestone_is_verified_by_someone_other_than_its_reporter() -> None:
    check_verifier(reported_by="vocera-1", verifier="contralor-1")
    with pytest.raises(Forbidden) as own:
        check_verifier(reported_by="vocera-1", verifier="vocera-1")
    assert own.value.code == "own_milestone" and own.value.status == 403
    with pytest.raises(FailedPrecondition) as unreported:
        check_verifier(reported_by=None, verifier="contralor-1")
    assert unreported.value.code == "milestone_not_reported"


def test_a_report_goes_received_under_review_answered_closed() -> None:
    state = move_report(ReportState.RECEIVED, ReportMove.REVIEW)
    state = move_report(state, ReportMove.ANSWER, answer="Se revisó la obra; el tanque está instalado.")
    assert move_report(state, ReportMove.CLOSE) is ReportState.CLOSED


@pytest.mark.parametrize("state", list(ReportState))
@pytest.mark.parametrize("action", list(ReportMove))
def test_every_other_report_move_is_refused(state: ReportState, action: ReportMove) -> None:
    if (state, action) in REPORT_MOVES:
        assert move_report(state, action, answer="Respuesta") is REPORT_MOVES[(state, action)]
        return
    with pytest.raises(FailedPrecondition) as refused:
        move_report(state, action, answer="Respuesta")
    assert refused.value.code == "report_transition_not_allowed"
    assert state.value in refused.value.detail


@pytest.mark.parametrize("answer", [None, "", "   "])
def test_an_answer_needs_a_text(answer: str | None) -> None:
    with pytest.raises(InvalidInput) as refused:
        move_report(ReportState.UNDER_REVIEW, ReportMove.ANSWER, answer=answer)
    assert refused.value.code == "answer_empty"


def spend(amount: int, **change: object) -> Expenditure:
    fields: dict[str, object] = {
        "amount_minor": amount,
        "currency": "USD",
        "spent_on": TODAY,
        "supplier": "Ferretería El Valle",
        "description": "Tubería de 4 pulgadas",
        **change,
    }
    return Expenditure(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expenditure", "code"),
    [
        (spend(0), "amount_invalid"),
        (spend(-5), "amount_invalid"),
        (spend(10, currency="VES"), "currency_mismatch"),
        (spend(10, spent_on=TODAY + timedelta(days=1)), "expenditure_in_future"),
        (spend(10, supplier="  "), "supplier_invalid"),
        (spend(10, supplier="x" * 201), "supplier_invalid"),
        (spend(10, description=""), "description_invalid"),
    ],
)
def test_a_malformed_expenditure_is_refused(expenditure: Expenditure, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_expenditure(expenditure, currency="USD", spent_minor=0, disbursed_minor=1_000, today=TODAY)
    assert refused.value.code == code


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(1, 10**9))
@settings(max_examples=300, deadline=None)
def test_spending_never_passes_what_was_disbursed(disbursed: int, spent: int, amount: int) -> None:
    expenditure = spend(amount)
    if spent + amount <= disbursed:
        check_expenditure(expenditure, currency="USD", spent_minor=spent, disbursed_minor=disbursed, today=TODAY)
        return
    with pytest.raises(FailedPrecondition) as refused:
        check_expenditure(expenditure, currency="USD", spent_minor=spent, disbursed_minor=disbursed, today=TODAY)
    assert refused.value.code == "exceeds_disbursed"
