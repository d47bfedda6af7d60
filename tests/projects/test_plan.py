"""The tranche split: integer minor units that always add up to the budget exactly."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comuna_projects.domain.plan import DEFAULT_PLAN, MilestonePlan, PlanStep, parse_plan, split_budget
from comuna_projects.settings import Settings


@st.composite
def percent_lists(draw: st.DrawFn) -> list[int]:
    """1..20 positive integer percentages adding up to exactly 100."""
    count = draw(st.integers(min_value=1, max_value=20))
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=99), min_size=count - 1, max_size=count - 1)))
    bounds = [0, *cuts, 100]
    return [b - a for a, b in itertools.pairwise(bounds)]


budgets = st.integers(min_value=0, max_value=2**63 - 1)


@given(budget=budgets, percents=percent_lists())
def test_tranches_add_up_to_the_budget_exactly(budget: int, percents: list[int]) -> None:
    tranches = split_budget(budget, percents)
    assert len(tranches) == len(percents)
    assert sum(tranches) == budget
    assert all(isinstance(t, int) and t >= 0 for t in tranches)


@given(budget=budgets, percents=percent_lists())
def test_every_tranche_but_the_last_is_its_share_rounded_down(budget: int, percents: list[int]) -> None:
    tranches = split_budget(budget, percents)
    for tranche, percent in zip(tranches[:-1], percents[:-1], strict=True):
        # floor(budget * p / 100), exactly, in integers.
        assert tranche * 100 <= budget * percent < (tranche + 1) * 100
    # The last one holds the remainder: its exact share plus less than one unit per other step.
    exact_last = budget * percents[-1]
    assert tranches[-1] * 100 >= exact_last
    assert tranches[-1] * 100 - exact_last < 100 * len(percents)


@given(budget=budgets)
def test_default_plan_split(budget: int) -> None:
    tranches = parse_plan(DEFAULT_PLAN).split(budget)
    assert sum(tranches) == budget
    assert tranches[0] == tranches[1] == budget * 40 // 100


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (1_000_000, [400_000, 400_000, 200_000]),
        (1, [0, 0, 1]),
        (3, [1, 1, 1]),
        (999, [399, 399, 201]),
        (1_000_001, [400_000, 400_000, 200_001]),
    ],
)
def test_default_plan_examples(budget: int, expected: list[int]) -> None:
    assert parse_plan(DEFAULT_PLAN).split(budget) == expected


def test_parse_default_plan() -> None:
    plan = parse_plan(DEFAULT_PLAN)
    assert plan.steps == (PlanStep("Start-up", 40), PlanStep("Midpoint", 40), PlanStep("Completion", 20))


def test_parse_allows_spaces_and_colons_in_titles() -> None:
    plan = parse_plan(" Phase 1: ground works : 50 , Roof:50 ")
    assert plan.steps == (PlanStep("Phase 1: ground works", 50), PlanStep("Roof", 50))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Start-up",
        "Start-up:40,Completion:50",
        "A:50,B:60,C:-10",
        "A:0,B:100",
        ":100",
        "A:forty,B:60",
        "A:50.5,B:49.5",
        "A:101",
        ",".join(f"S{i}:4" for i in range(25)),
        "A" * 201 + ":100",
    ],
)
def test_parse_rejects_malformed_plans(text: str) -> None:
    with pytest.raises(ValueError):
        parse_plan(text)


def test_a_plan_cannot_be_built_invalid() -> None:
    with pytest.raises(ValueError):
        MilestonePlan((PlanStep("A", 60), PlanStep("B", 60)))


@pytest.mark.parametrize(("budget", "percents"), [(-1, [100]), (10, []), (10, [50, 40]), (10, [110, -10])])
def test_split_rejects_bad_input(budget: int, percents: list[int]) -> None:
    with pytest.raises(ValueError):
        split_budget(budget, percents)


def test_settings_reject_a_bad_plan_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMUNA_PROJECTS_MILESTONE_PLAN", "A:50,B:40")
    with pytest.raises(ValueError):
        Settings()
    monkeypatch.setenv("COMUNA_PROJECTS_MILESTONE_PLAN", "Design:10,Build:70,Handover:20")
    assert [s.title for s in Settings().plan.steps] == ["Design", "Build", "Handover"]


def test_settings_defaults() -> None:
    settings = Settings()
    assert (settings.http_port, settings.grpc_port) == (8004, 50054)
    assert settings.database_url.endswith("/comuna_projects")
    assert settings.milestone_plan == DEFAULT_PLAN
