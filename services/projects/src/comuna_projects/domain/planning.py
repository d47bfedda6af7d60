"""A project's plan of milestones, and how it changes once execution has started.

A plan is a list of milestones, each with a title, a due date and its share of the budget in
integer minor units; the shares add up to the budget exactly (the tranches funding reserves).
Until execution starts the commune's spokespeople edit the plan directly. After that a change
is a *change request*: proposed by a spokesperson, decided by a member of the commune's
oversight committee who is not the proposer (four eyes), and kept, decided or not, as the
plan's history. A milestone already reported done or verified keeps its title and share: its
work was attested against them and its tranche may be paid.

Pure rules, no I/O; refusals are `InvalidInput` (a malformed plan), `Forbidden` (the proposer
deciding their own request) or `FailedPrecondition` (a request no longer open).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise

from comuna_platform.errors import FailedPrecondition, Forbidden, InvalidInput
from comuna_projects.domain.plan import MAX_STEPS, MAX_TITLE_LENGTH, MilestonePlan
from comuna_projects.vocabulary import RequestState


@dataclass(frozen=True, slots=True)
class PlannedMilestone:
    title: str
    due_on: date
    share_minor: int


@dataclass(frozen=True, slots=True)
class Plan:
    milestones: tuple[PlannedMilestone, ...]

    @property
    def total_minor(self) -> int:
        return sum(m.share_minor for m in self.milestones)


def validate_plan(milestones: Sequence[PlannedMilestone], *, budget_minor: int) -> Plan:
    """The plan, if it is one a project with `budget_minor` can follow; InvalidInput otherwise.

    Titles are 1 to 200 characters and unique (a milestone is named in reports and in the
    ledger's references); shares are positive and add up to the budget; due dates never go
    back (milestones are verified in order, so their dates follow that order)."""
    if not 1 <= len(milestones) <= MAX_STEPS:
        raise InvalidInput(f"a plan has 1 to {MAX_STEPS} milestones", code="plan_size_invalid")
    seen: set[str] = set()
    for position, milestone in enumerate(milestones, start=1):
        title = milestone.title.strip()
        if not title or len(title) > MAX_TITLE_LENGTH or title != milestone.title:
            raise InvalidInput(
                f"milestone {position}: a title has 1 to {MAX_TITLE_LENGTH} characters, without surrounding spaces",
                code="milestone_title_invalid",
            )
        if title.casefold() in seen:
            raise InvalidInput(
                f"milestone {position}: the title {title!r} is used twice", code="milestone_title_repeated"
            )
        seen.add(title.casefold())
        if milestone.share_minor <= 0:
            raise InvalidInput(f"milestone {position}: its share must be positive", code="milestone_share_invalid")
    for position, (before, after) in enumerate(pairwise(milestones), start=2):
        if after.due_on < before.due_on:
            raise InvalidInput(
                f"milestone {position} is due before milestone {position - 1}", code="milestone_dates_out_of_order"
            )
    plan = Plan(tuple(milestones))
    if plan.total_minor != budget_minor:
        raise InvalidInput(
            f"the milestones' shares add up to {plan.total_minor}, the budget is {budget_minor}",
            code="plan_shares_mismatch",
        )
    return plan


def default_plan(steps: MilestonePlan, *, budget_minor: int, due_dates: Sequence[date]) -> Plan:
    """The configured percent plan (`domain.plan`) turned into shares, with these due dates."""
    if len(due_dates) != len(steps.steps):
        raise ValueError("one due date per step")
    shares = steps.split(budget_minor)
    # A budget too small to give every step a unit (a few minor units) drops the steps that get
    # none: every milestone releases a positive tranche, and the shares still add up.
    return validate_plan(
        [
            PlannedMilestone(s.title, d, share)
            for s, d, share in zip(steps.steps, due_dates, shares, strict=True)
            if share > 0
        ],
        budget_minor=budget_minor,
    )


def check_frozen_kept(current: Plan, proposed: Plan, *, attested: int) -> None:
    """The first `attested` milestones (reported done or verified) must stay as they are: same
    title, same share, same place."""
    if not 0 <= attested <= len(current.milestones):
        raise ValueError("attested milestones are milestones of the current plan")
    if len(proposed.milestones) < attested:
        raise InvalidInput(
            f"the first {attested} milestones were already attested and cannot be removed", code="milestone_attested"
        )
    for position in range(attested):
        before, after = current.milestones[position], proposed.milestones[position]
        if (before.title, before.share_minor) != (after.title, after.share_minor):
            raise InvalidInput(
                f"milestone {position + 1} was already attested: its title and share cannot change",
                code="milestone_attested",
            )


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    requested_by: str
    proposed: Plan
    reason: str
    state: RequestState = RequestState.OPEN
    decided_by: str | None = None


def decide(request: ChangeRequest, *, by: str, approve: bool) -> ChangeRequest:
    """An overseer's decision on an open request; the proposer cannot decide their own."""
    if request.state is not RequestState.OPEN:
        raise FailedPrecondition(f"the change request is already {request.state.value}", code="change_request_closed")
    if by == request.requested_by:
        raise Forbidden("nobody decides their own change request", code="own_change_request")
    state = RequestState.APPROVED if approve else RequestState.REJECTED
    return ChangeRequest(request.requested_by, request.proposed, request.reason, state, by)


def withdraw(request: ChangeRequest, *, by: str) -> ChangeRequest:
    """The proposer takes back an open request."""
    if request.state is not RequestState.OPEN:
        raise FailedPrecondition(f"the change request is already {request.state.value}", code="change_request_closed")
    if by != request.requested_by:
        raise Forbidden("only the proposer withdraws a change request", code="not_the_proposer")
    return ChangeRequest(request.requested_by, request.proposed, request.reason, RequestState.WITHDRAWN, None)
