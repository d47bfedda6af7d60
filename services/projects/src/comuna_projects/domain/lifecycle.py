"""A project's life cycle: its stages, the moves between them, and when it counts as stalled.

    planned ──start──▶ in_execution ──complete──▶ completed
       │                 │      ▲
       │               stall  resume (the next progress report)
       │                 ▼      │
       │                stalled ┘
       └──cancel──▶ cancelled ◀──cancel── in_execution, stalled

`completed` and `cancelled` are final. A project is completed only when every milestone is
verified and its spending is reconciled (`completion_blockers`). Pure rules, no I/O: the use
cases load the project, ask here, and store the answer in the same transaction.

Stalled is a flag the service raises by itself (`stall_reasons`, with the clock of the caller)
and the next progress report clears:
- no progress report for `quiet_days` days (counted from the start of execution until the
  first report), or
- a milestone not yet reported done whose due date passed after the last report.
A report acknowledges the milestones overdue at its time: the flag clears, and comes back only
when the project goes quiet again or another due date passes without the work being done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from comuna_platform.errors import FailedPrecondition
from comuna_projects.vocabulary import Stage


class Move(StrEnum):
    START = "start"
    STALL = "stall"
    RESUME = "resume"
    COMPLETE = "complete"
    CANCEL = "cancel"


# Every allowed move: (from, move) -> to. Anything else is refused.
MOVES: dict[tuple[Stage, Move], Stage] = {
    (Stage.PLANNED, Move.START): Stage.IN_EXECUTION,
    (Stage.PLANNED, Move.CANCEL): Stage.CANCELLED,
    (Stage.IN_EXECUTION, Move.STALL): Stage.STALLED,
    (Stage.IN_EXECUTION, Move.COMPLETE): Stage.COMPLETED,
    (Stage.IN_EXECUTION, Move.CANCEL): Stage.CANCELLED,
    (Stage.STALLED, Move.RESUME): Stage.IN_EXECUTION,
    (Stage.STALLED, Move.CANCEL): Stage.CANCELLED,
}

FINAL = frozenset({Stage.COMPLETED, Stage.CANCELLED})
# Where the plan may still be edited directly; later, only through an approved change request.
PLAN_EDITABLE = frozenset({Stage.PLANNED})
# Where work is under way: progress reports, expenditures and milestone reports are taken.
UNDER_WAY = frozenset({Stage.IN_EXECUTION, Stage.STALLED})


def move(stage: Stage, action: Move) -> Stage:
    """The stage after `action`; 409-style refusal (FailedPrecondition) if it is not allowed."""
    after = MOVES.get((stage, action))
    if after is None:
        raise FailedPrecondition(
            f"a project that is {stage.value} cannot {action.value}",
            code="transition_not_allowed",
            stage=stage.value,
            move=action.value,
        )
    return after


@dataclass(frozen=True, slots=True)
class MilestoneProgress:
    sequence: int
    due_at: datetime
    reported_done: bool
    verified: bool


def completion_blockers(milestones: Sequence[MilestoneProgress], *, spending_reconciled: bool) -> list[str]:
    """Why the project cannot be completed yet; empty when it can."""
    in_order = sorted(milestones, key=lambda m: m.sequence)
    blockers = [f"milestone {m.sequence} is not verified" for m in in_order if not m.verified]
    if not milestones:
        blockers.append("the project has no milestones")
    if not spending_reconciled:
        blockers.append("its spending is not reconciled")
    return blockers


def require_completable(milestones: Sequence[MilestoneProgress], *, spending_reconciled: bool) -> None:
    blockers = completion_blockers(milestones, spending_reconciled=spending_reconciled)
    if blockers:
        raise FailedPrecondition(
            f"the project cannot be completed: {'; '.join(blockers)}", code="project_not_completable"
        )


@dataclass(frozen=True, slots=True)
class StallPolicy:
    quiet_days: int = 30

    def __post_init__(self) -> None:
        if self.quiet_days < 1:
            raise ValueError("a project may go quiet for at least one day before it counts as stalled")


def stall_reasons(
    *,
    started_at: datetime,
    last_report_at: datetime | None,
    milestones: Sequence[MilestoneProgress],
    now: datetime,
    policy: StallPolicy,
) -> list[str]:
    """Why a project in execution counts as stalled at `now`; empty when it does not."""
    reasons: list[str] = []
    quiet_since = last_report_at or started_at
    if now - quiet_since >= timedelta(days=policy.quiet_days):
        reasons.append(f"no progress report for {(now - quiet_since).days} days")
    for m in sorted(milestones, key=lambda m: m.sequence):
        if not m.reported_done and m.due_at <= now and (last_report_at is None or m.due_at > last_report_at):
            reasons.append(f"milestone {m.sequence} is overdue")
    return reasons


def stage_at(stage: Stage, reasons: Sequence[str]) -> Stage:
    """What the stall detector makes of a project: in execution with reasons → stalled; any
    other stage is left as it is (a stalled project resumes only with a report)."""
    if stage is Stage.IN_EXECUTION and reasons:
        return move(stage, Move.STALL)
    return stage
