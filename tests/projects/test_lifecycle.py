"""The project life cycle's pure rules (`domain.lifecycle`): every move of every stage, what
completion needs, and when the stall flag rises and clears, on a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comuna_platform.errors import FailedPrecondition
from comuna_projects.domain.lifecycle import (
    FINAL,
    MOVES,
    MilestoneProgress,
    Move,
    StallPolicy,
    completion_blockers,
    move,
    require_completable,
    stage_at,
    stall_reasons,
)
from comuna_projects.vocabulary import Stage

START = datetime(2027, 1, 4, 9, tzinfo=UTC)
POLICY = StallPolicy(quiet_days=30)


def milestone(sequence: int, due_in_days: int, *, done: bool = False, verified: bool = False) -> MilestoneProgress:
    return MilestoneProgress(sequence, START + timedelta(days=due_in_days), reported_done=done, verified=verified)


def test_the_happy_path_and_the_stall_loop() -> None:
    stage = move(Stage.PLANNED, Move.START)
    assert stage is Stage.IN_EXECUTION
    assert move(stage, Move.STALL) is Stage.STALLED
    assert move(Stage.STALLED, Move.RESUME) is Stage.IN_EXECUTION
    assert move(stage, Move.COMPLETE) is Stage.COMPLETED


@pytest.mark.parametrize("stage", list(Stage))
@pytest.mark.parametrize("action", list(Move))
def test_every_move_not_in_the_table_is_refused_with_a_clear_error(stage: Stage, action: Move) -> None:
    if (stage, action) in MOVES:
        assert move(stage, action) is MOVES[(stage, action)]
        return
    with pytest.raises(FailedPrecondition) as refused:
        move(stage, action)
    assert refused.value.code == "transition_not_allowed"
    assert refused.value.status == 409
    assert f"{stage.value} cannot {action.value}" in refused.value.detail


def test_final_stages_have_no_way_out_and_cancel_is_possible_until_then() -> None:
    assert {s for (s, _) in MOVES} & FINAL == set()
    assert {s for (s, a) in MOVES if a is Move.CANCEL} == set(Stage) - FINAL
    assert MOVES[(Stage.PLANNED, Move.START)] is Stage.IN_EXECUTION
    # Only a report resumes a stalled project, and only execution can be completed.
    assert [s for (s, a) in MOVES if a is Move.COMPLETE] == [Stage.IN_EXECUTION]


@given(st.lists(st.sampled_from(list(Move)), max_size=30))
@settings(max_examples=300, deadline=None)
def test_any_sequence_of_moves_stays_on_the_graph_and_stops_at_a_final_stage(actions: list[Move]) -> None:
    stage = Stage.PLANNED
    for action in actions:
        try:
            after = move(stage, action)
        except FailedPrecondition:
            continue
        assert stage not in FINAL
        assert (stage, action) in MOVES
        stage = after
    assert stage in set(Stage)


def test_completion_needs_every_milestone_verified_and_the_spending_reconciled() -> None:
    milestones = [milestone(2, 60, done=True, verified=False), milestone(1, 30, done=True, verified=True)]
    assert completion_blockers(milestones, spending_reconciled=False) == [
        "milestone 2 is not verified",
        "its spending is not reconciled",
    ]
    assert completion_blockers([], spending_reconciled=True) == ["the project has no milestones"]
    with pytest.raises(FailedPrecondition) as refused:
        require_completable(milestones, spending_reconciled=True)
    assert refused.value.code == "project_not_completable" and "milestone 2" in refused.value.detail
    done = [milestone(1, 30, done=True, verified=True), milestone(2, 60, done=True, verified=True)]
    require_completable(done, spending_reconciled=True)
    assert completion_blockers(done, spending_reconciled=True) == []


def test_the_stall_flag_rises_after_the_quiet_days_and_clears_on_the_next_report() -> None:
    plan = [milestone(1, 90)]
    day = timedelta(days=1)

    def reasons(now: datetime, last_report: datetime | None) -> list[str]:
        return stall_reasons(started_at=START, last_report_at=last_report, milestones=plan, now=now, policy=POLICY)

    assert reasons(START + 29 * day, None) == []
    assert reasons(START + 30 * day, None) == ["no progress report for 30 days"]
    assert stage_at(Stage.IN_EXECUTION, reasons(START + 30 * day, None)) is Stage.STALLED
    report = START + 31 * day
    assert reasons(report, report) == []  # the report clears it
    assert reasons(report + 29 * day, report) == []
    assert reasons(report + 30 * day, report) == ["no progress report for 30 days"]


def test_an_overdue_milestone_stalls_until_a_report_acknowledges_it() -> None:
    plan = [milestone(1, 10), milestone(2, 20, done=True)]
    day = timedelta(days=1)

    def reasons(now: datetime, last_report: datetime | None) -> list[str]:
        return stall_reasons(started_at=START, last_report_at=last_report, milestones=plan, now=now, policy=POLICY)

    assert reasons(START + 9 * day, START + 5 * day) == []
    assert reasons(START + 10 * day, START + 5 * day) == ["milestone 1 is overdue"]
    # Milestone 2 is past due too but was reported done: it never stalls the project.
    assert reasons(START + 25 * day, START + 5 * day) == ["milestone 1 is overdue"]
    assert reasons(START + 12 * day, START + 11 * day) == []


@pytest.mark.parametrize("stage", [Stage.PLANNED, Stage.STALLED, Stage.COMPLETED, Stage.CANCELLED])
def test_the_detector_moves_only_projects_in_execution(stage: Stage) -> None:
    assert stage_at(stage, ["milestone 1 is overdue"]) is stage
    assert stage_at(Stage.IN_EXECUTION, []) is Stage.IN_EXECUTION


@given(
    st.integers(1, 365),
    st.integers(0, 400),
    st.one_of(st.none(), st.integers(0, 400)),
    st.lists(st.tuples(st.integers(0, 400), st.booleans()), max_size=5),
)
@settings(max_examples=300, deadline=None)
def test_a_report_now_always_clears_the_flag(
    quiet_days: int, now_day: int, report_day: int | None, due: list[tuple[int, bool]]
) -> None:
    now = START + timedelta(days=now_day)
    plan = [milestone(i + 1, d, done=done) for i, (d, done) in enumerate(due)]
    policy = StallPolicy(quiet_days=quiet_days)
    assert stall_reasons(started_at=START, last_report_at=now, milestones=plan, now=now, policy=policy) == []


def test_a_policy_of_less_than_a_day_is_refused() -> None:
    with pytest.raises(ValueError):
        StallPolicy(quiet_days=0)
