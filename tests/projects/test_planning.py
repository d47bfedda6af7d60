"""A project's plan of milestones (`domain.planning`): what a valid plan is, the default plan
from settings, what attested milestones keep, and four-eyes decisions on change requests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comuna_platform.errors import FailedPrecondition, Forbidden, InvalidInput
from comuna_projects.domain.plan import parse_plan
from comuna_projects.domain.planning import (
    ChangeRequest,
    Plan,
    PlannedMilestone,
    check_frozen_kept,
    decide,
    default_plan,
    validate_plan,
    withdraw,
)
from comuna_projects.vocabulary import RequestState

DAY = date(2027, 2, 1)
BUDGET = 1_000_000


def step(title: str, days: int, share: int) -> PlannedMilestone:
    return PlannedMilestone(title, DAY + timedelta(days=days), share)


GOOD = [step("Compra de tubería", 0, 400_000), step("Instalación", 30, 400_000), step("Entrega", 60, 200_000)]


def test_a_plan_whose_shares_add_up_to_the_budget_is_accepted() -> None:
    plan = validate_plan(GOOD, budget_minor=BUDGET)
    assert plan.total_minor == BUDGET and plan.milestones == tuple(GOOD)


@pytest.mark.parametrize(
    ("milestones", "code"),
    [
        ([], "plan_size_invalid"),
        ([step(f"Paso {i}", i, 1) for i in range(21)], "plan_size_invalid"),
        ([step("", 0, BUDGET)], "milestone_title_invalid"),
        ([step(" Entrega", 0, BUDGET)], "milestone_title_invalid"),
        ([step("x" * 201, 0, BUDGET)], "milestone_title_invalid"),
        ([step("Entrega", 0, 500_000), step("entrega", 1, 500_000)], "milestone_title_repeated"),
        ([step("Inicio", 0, 0), step("Fin", 1, BUDGET)], "milestone_share_invalid"),
        ([step("Inicio", 0, -1), step("Fin", 1, BUDGET + 1)], "milestone_share_invalid"),
        ([step("Inicio", 10, 500_000), step("Fin", 9, 500_000)], "milestone_dates_out_of_order"),
        ([step("Inicio", 0, 500_000), step("Fin", 1, 499_999)], "plan_shares_mismatch"),
    ],
)
def test_a_malformed_plan_is_refused_with_its_reason(milestones: list[PlannedMilestone], code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_plan(milestones, budget_minor=BUDGET)
    assert refused.value.code == code and refused.value.status == 422


@given(st.integers(1, 10**12), st.sampled_from(["Inicio:40,Mitad:40,Fin:20", "Todo:100", "A:33,B:33,C:34"]))
@settings(max_examples=200, deadline=None)
def test_the_default_plan_splits_any_budget_exactly(budget: int, text: str) -> None:
    steps = parse_plan(text)
    due = [DAY + timedelta(days=30 * i) for i in range(len(steps.steps))]
    plan = default_plan(steps, budget_minor=budget, due_dates=due)
    assert plan.total_minor == budget
    assert all(m.share_minor > 0 for m in plan.milestones)
    # A budget too small to give every step a unit keeps only the steps that get one.
    kept = [s.title for s, share in zip(steps.steps, steps.split(budget), strict=True) if share > 0]
    assert [m.title for m in plan.milestones] == kept
    assert kept[-1] == steps.steps[-1].title


def test_attested_milestones_keep_their_title_share_and_place() -> None:
    current = Plan(tuple(GOOD))
    later = Plan((GOOD[0], step("Instalación", 45, 300_000), step("Entrega", 90, 300_000)))
    check_frozen_kept(current, later, attested=1)  # dates and shares of open milestones may move
    for proposed in (
        Plan((step("Compra de tubos", 0, 400_000), *GOOD[1:])),
        Plan((step("Compra de tubería", 0, 300_000), step("Instalación", 30, 500_000), GOOD[2])),
        Plan((GOOD[1], GOOD[0], GOOD[2])),
    ):
        with pytest.raises(InvalidInput) as refused:
            check_frozen_kept(current, proposed, attested=1)
        assert refused.value.code == "milestone_attested"
    with pytest.raises(InvalidInput):
        check_frozen_kept(current, Plan((GOOD[0],)), attested=2)


def test_a_change_request_is_decided_by_someone_else_once() -> None:
    request = ChangeRequest("vocera-1", Plan(tuple(GOOD)), "La tubería llegó tarde")
    with pytest.raises(Forbidden) as own:
        decide(request, by="vocera-1", approve=True)
    assert own.value.code == "own_change_request" and own.value.status == 403
    approved = decide(request, by="contralor-1", approve=True)
    assert (approved.state, approved.decided_by) == (RequestState.APPROVED, "contralor-1")
    closing: list[Callable[[], object]] = [
        lambda: decide(approved, by="contralor-2", approve=False),
        lambda: withdraw(approved, by="vocera-1"),
    ]
    for again in closing:
        with pytest.raises(FailedPrecondition) as closed:
            again()
        assert closed.value.code == "change_request_closed"
    assert decide(request, by="contralor-1", approve=False).state is RequestState.REJECTED


def test_only_the_proposer_withdraws_an_open_request() -> None:
    request = ChangeRequest("vocera-1", Plan(tuple(GOOD)), "Cambio de proveedor")
    with pytest.raises(Forbidden) as refused:
        withdraw(request, by="vocera-2")
    assert refused.value.code == "not_the_proposer"
    assert withdraw(request, by="vocera-1").state is RequestState.WITHDRAWN
